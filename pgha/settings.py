"""pgha's own settings from the environment: state directory, Temporal endpoint, task queue."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

#: The Web UI port of the embedded dev server.
EMBEDDED_UI_PORT = 8233
EMBEDDED_ADDRESS = "127.0.0.1:7233"


def state_dir() -> Path:
    """Where pgha keeps its state: the embedded server's database, secrets, lab keys, reports.

    ``PGHA_STATE_DIR``, else ``$XDG_STATE_HOME/pgha``, else ``~/.local/state/pgha``.
    """
    if env := os.environ.get("PGHA_STATE_DIR"):
        path = Path(env)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "pgha"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class TemporalSettings(BaseModel):
    """Where pgha's Temporal lives. ``address`` None means the embedded dev server."""

    model_config = ConfigDict(frozen=True)

    address: str | None = None
    namespace: str = "default"
    task_queue: str = "pgha"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    api_key: str | None = None
    ui_url: str | None = None

    @property
    def embedded(self) -> bool:
        return self.address is None

    @property
    def target(self) -> str:
        return self.address or EMBEDDED_ADDRESS

    @property
    def web_ui(self) -> str:
        if self.ui_url:
            return self.ui_url.rstrip("/")
        if self.embedded:
            return f"http://localhost:{EMBEDDED_UI_PORT}"
        return ""

    def workflow_url(self, workflow_id: str) -> str:
        if not self.web_ui:
            return ""
        return f"{self.web_ui}/namespaces/{self.namespace}/workflows/{workflow_id}"


def temporal_settings() -> TemporalSettings:
    """Read ``PGHA_TEMPORAL_*`` and ``PGHA_TASK_QUEUE`` from the environment."""
    env = os.environ.get
    return TemporalSettings(
        address=env("PGHA_TEMPORAL_ADDRESS") or None,
        namespace=env("PGHA_TEMPORAL_NAMESPACE") or "default",
        task_queue=env("PGHA_TASK_QUEUE") or "pgha",
        tls_cert=env("PGHA_TEMPORAL_TLS_CERT") or None,
        tls_key=env("PGHA_TEMPORAL_TLS_KEY") or None,
        tls_ca=env("PGHA_TEMPORAL_TLS_CA") or None,
        api_key=env("PGHA_TEMPORAL_API_KEY") or None,
        ui_url=env("PGHA_TEMPORAL_UI_URL") or None,
    )

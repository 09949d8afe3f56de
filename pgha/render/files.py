"""The rendered-file model shared by every renderer: a path, its text, mode and owner. No I/O."""

from __future__ import annotations

import hashlib

from pydantic import Field

from pgha.models import AbsPath, Model


class RenderedFile(Model):
    """One config file as pgha wants it on a host.

    ``content`` may hold secrets (Patroni's passwords, pgbouncer's userlist): it is left out
    of ``repr`` so a logged RenderedFile never shows it. Activities compare ``sha256`` with the
    file on the host and write (temp file, then rename) only when it differs.
    """

    path: AbsPath
    content: str = Field(repr=False)
    mode: int = Field(0o644, ge=0, le=0o7777)
    owner: str = "root"
    group: str = "root"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    @property
    def mode_octal(self) -> str:
        """The mode as ``chmod`` takes it, e.g. ``0640``."""
        return f"{self.mode:04o}"

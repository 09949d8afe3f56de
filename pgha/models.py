"""Small typed models that cross layer boundaries (spec, workflows, activities, hosts). No I/O."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
AbsPath = Annotated[str, Field(pattern=r"^/")]


class Model(BaseModel):
    """Base of pgha's boundary models: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Model):
    """Where a secret lives. Exactly one of the three; resolved only inside activities.

    ``secret``: a name in pgha's secret store (generated on first use when missing);
    ``env``: an environment variable of the worker; ``file``: a file on the worker.
    """

    secret: Name | None = None
    env: str | None = None
    file: AbsPath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("secret", "env", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of secret, env or file (got {', '.join(given) or 'none'})"
            )
        return self


class HostTarget(Model):
    """Everything needed to reach one host over SSH. Holds no secret values."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None
    sudo: bool = False
    sudo_password: SecretRef | None = None
    connect_timeout: float = 10.0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})"

"""The secret values config files need, resolved by activities on the worker. No I/O.

Workflows never build or see a RenderSecrets: an activity resolves the spec's secret
references (pgha.secrets) and passes the values straight to a renderer.
"""

from __future__ import annotations

import re

from pydantic import SecretStr, field_validator

from pgha.models import Model

#: VRRP "PASS" authentication carries at most 8 characters; keepalived silently truncates
#: longer ones, which would make two proxies with different long passwords look alike.
KEEPALIVED_PASS_MAX = 8
_KEEPALIVED_PASS = re.compile(r"^[A-Za-z0-9._~+-]{1,8}$")


class MissingSecretError(ValueError):
    """A renderer needs a secret the activity did not resolve. A bug in the caller."""


class RenderSecrets(Model):
    """Secret values for rendering. Each renderer takes only the ones its file needs.

    Every field is optional so an activity resolves just what its file needs (the
    keepalived activity never touches database passwords); a renderer missing one raises
    :class:`MissingSecretError` naming the field.
    """

    #: Password of the PostgreSQL superuser Patroni manages (``postgres``).
    superuser: SecretStr | None = None
    #: Password of the streaming-replication user.
    replication: SecretStr | None = None
    #: Password of the pg_rewind user.
    rewind: SecretStr | None = None
    #: Password protecting Patroni's REST API (switchover, restart, reload, config).
    patroni_restapi: SecretStr | None = None
    #: Password of pgbouncer's auth_user (the login that runs auth_query).
    pgbouncer_auth: SecretStr | None = None
    #: VRRP authentication between the proxies; 1-8 characters from [A-Za-z0-9._~+-].
    keepalived_auth: SecretStr | None = None

    @field_validator("keepalived_auth")
    @classmethod
    def _vrrp_pass(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _KEEPALIVED_PASS.match(value.get_secret_value()):
            raise ValueError(
                f"keepalived_auth must be 1-{KEEPALIVED_PASS_MAX} characters from "
                "[A-Za-z0-9._~+-] (VRRP PASS authentication keeps only 8)"
            )
        return value

    def need(self, field: str) -> str:
        """The plain value of ``field``, for a template that must write it.

        :raises MissingSecretError: the field was not resolved.
        """
        value = getattr(self, field, None)
        if not isinstance(value, SecretStr):
            raise MissingSecretError(
                f"rendering needs secret {field!r}, which the caller did not resolve"
            )
        return value.get_secret_value()

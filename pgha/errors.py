"""The one exception tree of pgha; every error a user can see is a PghaError.

```
PghaError                      message says what failed, where, what was seen, what to do
├── SpecError                  a cluster spec is missing, unreadable or invalid (CLI exit 2)
├── SettingsError              pgha's own settings (Temporal address, TLS files...) are wrong
├── TemporalUnavailable        the Temporal server cannot be reached or started
├── ClusterBusy                another mutating operation holds the cluster's lock
├── OperationFailed            a workflow ended failed, cancelled or timed out
├── LabError                   the local lab (docker, debootstrap) cannot do what was asked
└── HostError                  something on one host, always names the host
    ├── HostUnreachable        SSH connect/login failed or the link dropped (transient: retried)
    ├── HostKeyMismatch        the host's key differs from known_hosts (permanent: never retried)
    ├── HostKeyUnknown         the host has no entry in known_hosts (permanent)
    ├── HostLoginRefused       the SSH server refused our key (permanent)
    ├── SshKeyUnusable         ssh.key_file is missing, unreadable or not a usable key (permanent)
    ├── SudoRefused            sudo wants a password we lack, rejects it, or is missing (permanent)
    ├── CommandTimedOut        a command ran past its time limit and was stopped (transient)
    └── CommandFailed          a command exited non-zero; carries command, exit code, stderr tail
```

The hosts layer raises these; activities translate the permanent ones into
non-retryable ``ApplicationError`` with the class name as the type, so the names here are
also the failure types seen in Temporal.
"""

from __future__ import annotations


class PghaError(Exception):
    """Base of every error pgha reports to a user."""


class SpecError(PghaError):
    """A cluster spec is missing, unreadable or fails validation."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: the cluster spec is not valid:\n{lines}")


class SettingsError(PghaError):
    """pgha's own configuration (environment, settings files) is wrong."""


class TemporalUnavailable(PghaError):
    """The Temporal server cannot be reached, or the embedded one cannot start."""


class ClusterBusy(PghaError):
    """Another mutating operation is running on the cluster."""


class OperationFailed(PghaError):
    """A workflow ended in failure, cancellation or timeout."""


class LabError(PghaError):
    """The local lab (docker engine, image build, containers) failed."""


class HostError(PghaError):
    """Something went wrong on one host; the message always names the host."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(message)


class HostUnreachable(HostError):
    """SSH could not connect or log in, or the connection dropped. Transient."""


class HostKeyMismatch(HostError):
    """The host presented a key that differs from the one in known_hosts. Permanent."""


class HostKeyUnknown(HostError):
    """The host has no entry in the known_hosts file. Permanent until an operator adds it."""


class HostLoginRefused(HostError):
    """The SSH server refused the login (wrong user or key not authorized). Permanent."""


class SshKeyUnusable(HostError):
    """The client key file is missing, unreadable, encrypted or not a key. Permanent."""


class SudoRefused(HostError):
    """sudo cannot give us root: no password configured, a wrong one, or no rule. Permanent."""


class CommandTimedOut(HostError):
    """A command ran past its time limit; it was stopped on the host. Transient."""

    def __init__(self, host: str, address: str, command: str, limit_s: float, detail: str) -> None:
        self.command = command
        self.limit_s = limit_s
        super().__init__(
            host,
            f"host {host} ({address}): `{command}` did not finish within {limit_s:g} s; {detail}",
        )


class CommandFailed(HostError):
    """A command on a host exited non-zero."""

    def __init__(
        self, host: str, address: str, command: str, exit_code: int, stderr_tail: str
    ) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        detail = f":\n{stderr_tail}" if stderr_tail else " (no stderr)"
        super().__init__(host, f"host {host} ({address}): `{command}` exited {exit_code}{detail}")


#: Error types that retrying cannot fix; activities mark them non-retryable.
PERMANENT_HOST_ERRORS: tuple[type[HostError], ...] = (
    HostKeyMismatch,
    HostKeyUnknown,
    HostLoginRefused,
    SshKeyUnusable,
    SudoRefused,
)

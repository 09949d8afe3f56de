"""Results of the hosts layer: one command's result, and a converge op's outcome."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CommandResult(BaseModel):
    """What one remote command did. ``command`` has secrets masked."""

    model_config = ConfigDict(frozen=True)

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Outcome(BaseModel):
    """What a converge op did: ``changed`` with the commands it ran, or why it did nothing."""

    model_config = ConfigDict(frozen=True)

    changed: bool
    summary: str
    commands: list[str] = []

    @classmethod
    def unchanged(cls, reason: str) -> Outcome:
        return cls(changed=False, summary=reason)

    @classmethod
    def made(cls, summary: str, commands: list[str]) -> Outcome:
        return cls(changed=True, summary=summary, commands=commands)


def combine(*outcomes: Outcome) -> Outcome:
    """One Outcome for several ops: changed if any changed; the summaries of what changed
    (or, when nothing did, of why not), and every command run."""
    changed = [o for o in outcomes if o.changed]
    commands = [c for o in outcomes for c in o.commands]
    if changed:
        return Outcome.made("; ".join(o.summary for o in changed), commands)
    return Outcome.unchanged("; ".join(o.summary for o in outcomes))

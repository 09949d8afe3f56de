"""What an operation workflow reports while it runs: its `progress` query and UI details. Pure."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class StepState(StrEnum):
    pending = "pending"
    running = "running"
    ok = "ok"
    changed = "changed"
    warning = "warning"
    failed = "failed"
    skipped = "skipped"


FINISHED = {StepState.ok, StepState.changed, StepState.warning, StepState.failed, StepState.skipped}
ICONS = {
    StepState.pending: "·",
    StepState.running: "…",
    StepState.ok: "✓",
    StepState.changed: "✎",
    StepState.warning: "!",
    StepState.failed: "✗",
    StepState.skipped: "–",
}


class Step(BaseModel):
    """One step of an operation, usually one activity on one host."""

    key: str
    title: str
    host: str | None = None
    state: StepState = StepState.pending
    detail: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.ended_at:
            return (self.ended_at - self.started_at).total_seconds()
        return None


class Progress(BaseModel):
    """The whole operation as seen from outside: phase, steps, and whether it is over."""

    operation: str
    cluster: str
    phase: str = "starting"
    steps: list[Step] = []
    done: bool = False
    outcome: str = ""

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def markdown(self) -> str:
        """The current details shown in the Temporal Web UI."""
        lines = [f"**{self.operation}** on `{self.cluster}`: {self.phase}", ""]
        lines += ["| | step | host | detail |", "|---|---|---|---|"]
        for s in self.steps:
            detail = s.detail.replace("|", "\\|").replace("\n", " ")[:120]
            lines.append(f"| {ICONS[s.state]} | {s.title} | {s.host or ''} | {detail} |")
        if self.outcome:
            lines += ["", self.outcome]
        return "\n".join(lines)

"""Keeps an operation's Progress inside a workflow and mirrors it to the Web UI. Deterministic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pgha.progress import Progress, Step, StepState
    from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR


T = TypeVar("T")


class Tracker:
    """The single place a workflow changes its progress; each change updates the UI details."""

    def __init__(self, operation: str, cluster: str) -> None:
        self.progress = Progress(operation=operation, cluster=cluster)

    def tag_search_attributes(self) -> None:
        """Set PghaCluster/PghaOperation when the starter did not (schedules, children)."""
        attrs = workflow.info().typed_search_attributes
        updates = [
            key.value_set(value)
            for key, value in (
                (CLUSTER_ATTR, self.progress.cluster),
                (OPERATION_ATTR, self.progress.operation),
            )
            if attrs.get(key) != value
        ]
        if updates:
            workflow.upsert_search_attributes(updates)

    def phase(self, name: str) -> None:
        self.progress.phase = name
        self._publish()

    def add(self, key: str, title: str, host: str | None = None) -> Step:
        step = Step(key=key, title=title, host=host)
        self.progress.steps.append(step)
        self._publish()
        return step

    def start(self, key: str, detail: str = "") -> None:
        step = self.progress.step(key)
        step.state = StepState.running
        step.started_at = workflow.now()
        step.detail = detail
        self._publish()

    def finish(self, key: str, state: StepState, detail: str = "") -> None:
        step = self.progress.step(key)
        step.state = state
        step.ended_at = workflow.now()
        step.detail = detail
        self._publish()

    def done(self, outcome: str) -> None:
        self.progress.done = True
        self.progress.phase = "done"
        self.progress.outcome = outcome
        self._publish()

    def _publish(self) -> None:
        workflow.set_current_details(self.progress.markdown())

    async def run(
        self,
        key: str,
        title: str,
        host: str | None,
        work: Awaitable[T],
        judge: Callable[[T], tuple[StepState, str]],
    ) -> T:
        """One progress step around ``work``: running, then the state and detail ``judge``
        gives its result, or failed with the error (which is re-raised)."""
        self.add(key, title, host)
        self.start(key)
        try:
            result = await work
        except BaseException as err:
            self.finish(key, StepState.failed, failure_text(err))
            raise
        state, detail = judge(result)
        self.finish(key, state, detail)
        return result


def failure_text(err: BaseException) -> str:
    """What an activity failure says, without Temporal's wrapping."""
    cause = err.__cause__ if isinstance(err.__cause__, ApplicationError) else err
    return str(getattr(cause, "message", cause))

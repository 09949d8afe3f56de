"""Guardian: one long-running workflow per cluster that watches it and reacts to its
events, so a failover at 3 a.m. does not wait for a human to notice what it left behind.

Every ``guardian.interval_s`` it takes one look (`guardian.observe`), derives the events
since the previous look (pgha.checks.cluster_events: edges only, so a quiet cluster makes
none), and handles each: the spec's reactions, except that a change made while a pgha
operation ran (a drill's fault, an upgrade's switchover) is that operation's, not an
incident: it is logged, never alerted on or reacted to. Events other systems send (the
`event` signal or `send_event` update, `pgha event send`) are handled the same way, at
once. The previous look and the newest events are the workflow's state, so a worker or
server restart loses nothing: the next look is compared with the last one before it. The
run continues as new every ``looks_per_run`` looks (120), keeping its history small.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pgha.checks.cluster_events import events_between, leader
    from pgha.event_kinds import EventKind, Reaction
    from pgha.event_models import (
        ClusterEvent,
        ExternalEvent,
        GuardianInput,
        GuardianView,
        Handled,
        Observation,
        ObserveInput,
        PostFailoverInput,
        PostFailoverStart,
        PostFailoverWait,
        RecordInput,
    )
    from pgha.search_attributes import CLUSTER_ATTR, OPERATION_ATTR
    from pgha.spec import ClusterSpec
    from pgha.status_models import Member
    from pgha.workflows.policy import ActivityPolicy
    from pgha.workflows.tracker import failure_text

#: Handled events kept in the state (and shown by `pgha events`).
RECENT = 50
#: The operation name the guardian's own workflow carries (it is not a lock holder).
GUARD = "guard"

#: One look: bounded, and retried briefly; a look that keeps failing is skipped (the next
#: one comes after the interval), never the end of the guardian.
LOOK = ActivityPolicy(
    start_to_close=timedelta(minutes=2),
    heartbeat=timedelta(seconds=30),
    retry=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
)
#: Recording an event (log, span event, webhook): a webhook down for a minute is retried.
RECORD = ActivityPolicy(
    start_to_close=timedelta(seconds=30),
    heartbeat=None,
    retry=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=20),
                      maximum_attempts=5),
)  # fmt: skip
START = ActivityPolicy(
    start_to_close=timedelta(seconds=30),
    heartbeat=None,
    retry=RetryPolicy(maximum_attempts=5),
)


@workflow.defn(name="Guardian")
class Guardian:
    """Runbook: look; derive the events since the last look; handle each (the spec's
    reactions, or only a log line during another pgha operation); wait the interval (or
    less, when an event is sent in or a stop is asked); again."""

    def __init__(self) -> None:
        self.cluster = ""
        self.looks = 0
        self.last: Observation | None = None
        self.recent: list[Handled] = []
        self.inbox: list[ClusterEvent] = []
        self.stopping = False
        self.spec: ClusterSpec | None = None
        self.waiting: PostFailoverWait | None = None
        self.known_leader: Member | None = None

    @workflow.signal(name="event")
    def event(self, sent: ExternalEvent) -> None:
        """An event from another system, handled like the guardian's own, at once."""
        self.inbox.append(ClusterEvent(kind=sent.kind, at=workflow.now(), subject=sent.subject,
                                       detail=sent.detail or f"{sent.kind.value} (sent)",
                                       source=sent.source, data=sent.data))  # fmt: skip

    @workflow.update(name="send_event")
    def send_event(self, sent: ExternalEvent) -> str:
        self.event(sent)
        return f"{sent.kind.value} queued for the guardian of {self.cluster}"

    @workflow.signal(name="stop")
    def stop(self) -> None:
        self.stopping = True

    @workflow.update(name="use_spec")
    def use_spec(self, spec: ClusterSpec) -> str:
        """A changed spec (webhook, interval, reactions), taken at the next look."""
        self.spec = spec
        return f"the guardian of {self.cluster} uses the new spec from its next look"

    @use_spec.validator
    def _same_cluster(self, spec: ClusterSpec) -> None:
        if self.cluster and spec.cluster != self.cluster:
            raise ValueError(f"this guardian watches {self.cluster}, not {spec.cluster}")

    @workflow.query(name="events")
    def view(self) -> GuardianView:
        lead = leader(self.last.status.patroni) if self.last else None
        return GuardianView(cluster=self.cluster, looks=self.looks,
                            last_at=self.last.at if self.last else None,
                            leader=lead.name if lead else "",
                            timeline=lead.timeline if lead else None,
                            recent=list(self.recent))  # fmt: skip

    @workflow.run
    async def run(self, inp: GuardianInput) -> GuardianView:
        self.spec = self.spec or inp.spec
        self.cluster, self.last, self.looks = inp.spec.cluster, inp.last, inp.looks
        self.recent, self.waiting = list(inp.recent), inp.waiting
        self.known_leader = inp.known_leader
        _tag(self.cluster)
        for _ in range(inp.looks_per_run):
            if self.stopping:
                break
            spec = self.spec
            await self._look(spec)
            await self._retry_waiting()
            self._show()
            # The interval, cut short by an event sent in or a stop; a timeout is the usual end.
            interval = timedelta(seconds=spec.guardian.interval_s)
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(lambda: bool(self.inbox) or self.stopping,
                                              timeout=interval)  # fmt: skip
            await self._handle_inbox(self.spec)
            if workflow.info().is_continue_as_new_suggested():
                break
        if self.stopping:
            return self.view()
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = inp.model_copy(update={
            "spec": self.spec, "last": self.last, "recent": self.recent[-RECENT:],
            "looks": self.looks, "waiting": self.waiting,
            "known_leader": self.known_leader})  # fmt: skip
        workflow.continue_as_new(carried)

    async def _look(self, spec: ClusterSpec) -> None:
        since = self.last.at if self.last else None
        try:
            now = await LOOK.execute("guardian.observe", ObserveInput(spec=spec, since=since),
                                     Observation, summary="look at the cluster")  # fmt: skip
        except ActivityError as err:
            workflow.logger.warning("guardian of %s: a look failed: %s", spec.cluster,
                                    failure_text(err))  # fmt: skip
            return
        self.looks += 1
        found = events_between(self.last, now, spec.guardian, self.known_leader)
        self.last = now
        self.known_leader = leader(now.status.patroni) or self.known_leader
        for event in found:
            await self._handle(spec, event)

    async def _handle_inbox(self, spec: ClusterSpec) -> None:
        while self.inbox:
            event = self.inbox.pop(0)
            if self.last is not None and self.last.operation and not event.during:
                event = event.model_copy(update={"during": self.last.operation})
            await self._handle(spec, event)

    async def _handle(self, spec: ClusterSpec, event: ClusterEvent) -> None:
        """The spec's reactions to ``event``; during another operation, a log line only."""
        reactions = spec.guardian.reactions.get(event.kind, [Reaction.log])
        incident = not event.during
        done: list[str] = []
        alert = incident and Reaction.alert in reactions
        try:
            said = await RECORD.execute(
                "guardian.record",
                RecordInput(spec=spec, event=event, send=alert),
                str,
                summary=f"{event.kind.value} {event.subject}",
            )
        except ActivityError as err:
            said = f"failed: {failure_text(err)}"
        done.append(f"{'alert' if alert else 'log'}: {said}")
        if not incident:
            done.append(f"no reaction: {event.during} was running (its own change)")
        elif Reaction.post_failover in reactions:
            done.append(f"post_failover: {await self._post_failover(spec, event)}")
        self.recent = [*self.recent, Handled(event=event, done=done)][-RECENT:]

    async def _post_failover(self, spec: ClusterSpec, event: ClusterEvent) -> str:
        if event.kind is not EventKind.leader_changed:
            return f"not for {event.kind.value} (only after a leader change)"
        old, new = event.data.get("old_leader", ""), event.data.get("new_leader", event.subject)
        self.waiting = PostFailoverWait(
            inp=PostFailoverInput(spec=spec, old_leader=old, new_leader=new), event_at=event.at
        )
        return await self._try_post_failover()

    async def _try_post_failover(self) -> str:
        """Start the waiting post-failover; while another operation holds the cluster's
        lock it keeps waiting (tried again after each look), never pushed past it."""
        assert self.waiting is not None
        start = PostFailoverStart(inp=self.waiting.inp, task_queue=workflow.info().task_queue)
        try:
            said = await START.execute("guardian.start_post_failover", start, str,
                                       summary="start post-failover")  # fmt: skip
        except ActivityError as err:
            said = f"not started: {failure_text(err)}"
        if said.startswith("busy:"):
            return f"waiting for the cluster's lock ({said})"
        self.waiting = None
        return said

    async def _retry_waiting(self) -> None:
        """A waiting post-failover, tried again; once started, its event says so."""
        if self.waiting is None:
            return
        at = self.waiting.event_at
        said = await self._try_post_failover()
        if self.waiting is None:
            self.recent = [Handled(event=h.event, done=[*h.done, f"post_failover: {said}"])
                           if h.event.at == at and h.event.kind is EventKind.leader_changed
                           else h for h in self.recent]  # fmt: skip

    def _show(self) -> None:
        """The guardian's view as its current details in the Web UI."""
        v = self.view()
        lines = [f"**guardian of {v.cluster}**: {v.looks} looks, last at "
                 f"{v.last_at:%H:%M:%S} UTC" if v.last_at else f"**guardian of {v.cluster}**",
                 f"leader: {v.leader or '?'} (timeline {v.timeline})", ""]  # fmt: skip
        for h in v.recent[-10:]:
            lines.append(f"- {h.event.at:%m-%d %H:%M:%S} {h.event.kind.value} {h.event.subject}: "
                         f"{h.event.detail} ({'; '.join(h.done)})")  # fmt: skip
        workflow.set_current_details("\n".join(lines))


def _tag(cluster: str) -> None:
    attrs = workflow.info().typed_search_attributes
    wanted: list[tuple[SearchAttributeKey[str], str]] = [(CLUSTER_ATTR, cluster),
                                                         (OPERATION_ATTR, GUARD)]  # fmt: skip
    updates = [k.value_set(v) for k, v in wanted if attrs.get(k) != v]
    if updates:
        workflow.upsert_search_attributes(updates)

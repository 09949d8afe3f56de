"""Every timeout and retry policy of pgha's workflows, in one place. No literals elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

T = TypeVar("T")

#: Failure types that retrying cannot fix (see pgha.errors).
NON_RETRYABLE = [
    "HostKeyMismatch",
    "HostKeyUnknown",
    "HostLoginRefused",
    "SshKeyUnusable",
    "SudoRefused",
    "SpecError",
    "SettingsError",
]


@dataclass(frozen=True)
class ActivityPolicy:
    """Options for one kind of activity, spread into ``workflow.execute_activity``."""

    start_to_close: timedelta
    heartbeat: timedelta | None
    retry: RetryPolicy
    #: TRY_CANCEL lets the workflow move on while the remote work may still run; long jobs
    #: wait until the activity has stopped its command (it does on cancellation).
    cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL

    async def execute(self, activity: str, arg: Any, result_type: type[T], *, summary: str) -> T:
        """Run activity ``activity`` (by its stable name) under this policy; typed result."""
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=self.start_to_close,
            heartbeat_timeout=self.heartbeat,
            retry_policy=self.retry,
            cancellation_type=self.cancellation,
            summary=summary,
        )
        return result


#: A read-only check of one host: a few SSH commands. A dead worker is noticed through the
#: heartbeat within 10 s; unreachable hosts are retried for about a minute, then reported.
HOST_CHECK = ActivityPolicy(
    start_to_close=timedelta(minutes=2),
    heartbeat=timedelta(seconds=10),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=15),
        maximum_attempts=5,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)


#: A converge step on one host: a handful of commands, maybe a service reload.
CONVERGE = ActivityPolicy(
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(seconds=20),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

#: Package installs, etcd bootstrap, stanza creation, a backup: minutes, heartbeating.
LONG_CONVERGE = ActivityPolicy(
    start_to_close=timedelta(minutes=60),
    heartbeat=timedelta(seconds=30),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=5),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=4,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

#: Waiting for the cluster to reach a state (a leader, streaming replicas, a quorum, the
#: VIP): the activity waits a bounded time, then fails transiently and is retried, so the
#: whole wait is bounded too (about 5 minutes).
CLUSTER_WAIT = ActivityPolicy(
    start_to_close=timedelta(minutes=2),
    heartbeat=timedelta(seconds=20),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=3),
        backoff_coefficient=1.5,
        maximum_interval=timedelta(seconds=15),
        maximum_attempts=8,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)


#: One read of one part of the live cluster for `pgha status`: fast, one retry, then
#: reported as unreadable.
STATUS_READ = ActivityPolicy(
    start_to_close=timedelta(seconds=20),
    heartbeat=None,
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_attempts=2,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)


#: One backup, a repository verify, a restore with its recovery, the checks of a restored
#: copy: minutes to hours, heartbeating every few seconds so a lost worker is noticed in a
#: minute. Retried a few times (each attempt is safe to repeat), never for damage found.
LONG_RUN = ActivityPolicy(
    cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    start_to_close=timedelta(hours=8),
    heartbeat=timedelta(seconds=60),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=5),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

#: Writing on the worker's own disk (the report store): quick, retried briefly.
LOCAL_WRITE = ActivityPolicy(
    start_to_close=timedelta(seconds=30),
    heartbeat=None,
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
)

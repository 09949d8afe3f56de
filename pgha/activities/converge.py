"""Helpers shared by the converge activities of provisioning: StepResults from Outcomes, and
permanent failures as non-retryable ApplicationErrors. No I/O of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from temporalio.exceptions import ApplicationError

from pgha.errors import SettingsError
from pgha.hosts.result import Outcome
from pgha.render import MissingSecretError
from pgha.steps import HostStep, StepResult


def step_result(
    host: str,
    outcomes: Sequence[Outcome],
    *,
    warnings: Sequence[str] = (),
    facts: dict[str, Any] | None = None,
) -> StepResult:
    """One StepResult for several ops: changed when any changed; the summary lists what
    changed, or every reason for doing nothing. Outcomes carry no secrets (file contents
    travel on stdin, never in commands or summaries)."""
    made = [o.summary for o in outcomes if o.changed]
    summary = "; ".join(made or [o.summary for o in outcomes]) or "nothing to do"
    return StepResult(
        host=host,
        changed=bool(made),
        summary=summary,
        warnings=list(warnings),
        facts=facts or {},
    )


def permanent(message: str, kind: str) -> ApplicationError:
    """A failure retrying cannot fix; ``kind`` becomes the failure type seen in Temporal."""
    return ApplicationError(message, type=kind, non_retryable=True)


def param(step: HostStep, name: str) -> str:
    """A value the workflow must pass in ``step.params``.

    :raises ApplicationError: non-retryable, when it is missing (a workflow bug).
    """
    value = step.params.get(name, "")
    if not value:
        raise permanent(
            f"host {step.host}: the step needs params[{name!r}] and the workflow sent none",
            "InvalidStepInput",
        )
    return value


@asynccontextmanager
async def translated(*kinds: type[Exception], render_errors: bool = True) -> AsyncIterator[None]:
    """Turn the permanent errors of the hosts layer (``kinds``) into non-retryable
    ApplicationErrors named after their class; anything else stays a plain exception,
    which Temporal retries.

    :param render_errors: also treat rendering errors as permanent (see :func:`rendering`).
        Pass False around host work, where a ValueError from parsing a host's unexpected
        output may pass with a retry.
    """
    try:
        if render_errors:
            with rendering():
                yield
        else:
            yield
    except kinds as err:
        raise permanent(str(err), type(err).__name__) from None


@contextmanager
def rendering() -> Iterator[None]:
    """Rendering and secret resolution: the same input fails the same way again, so their
    errors are non-retryable. Wrap only pure work: a ValueError from parsing a host's
    output must stay retryable."""
    try:
        yield
    except MissingSecretError as err:
        raise permanent(str(err), "MissingSecret") from None
    except SettingsError as err:
        raise permanent(str(err), "SettingsError") from None
    except ValueError as err:
        # Renderers raise ValueError for a spec they cannot render (a Patroni-owned
        # parameter, a host without the role).
        raise permanent(str(err), "InvalidSpec") from None

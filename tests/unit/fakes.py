"""A scripted stand-in for pgha.hosts.host.Host: answers commands by pattern, records them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from pgha.errors import CommandFailed
from pgha.hosts.host import Command, mask, render_command, stderr_tail
from pgha.hosts.result import CommandResult
from pgha.models import HostTarget

DATA = Path(__file__).parent / "data"


def data(name: str) -> str:
    """A recorded output from tests/unit/data."""
    return (DATA / name).read_text()


@dataclass
class Rule:
    pattern: str | re.Pattern[str]
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    times: int | None = None  # None: answers forever; else this many times, then falls through
    used: int = 0

    def matches(self, line: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(line) is not None
        return self.pattern in line


@dataclass
class Call:
    command: str
    input: str | None
    timeout: float | None
    label: str | None
    secrets: Sequence[SecretStr] = field(default_factory=tuple)


class FakeHost:
    """Same ``run``/``run_all`` as :class:`pgha.hosts.host.Host`, without SSH.

    Script answers with :meth:`on` (first matching rule wins: a substring, or a compiled
    regex searched in the rendered command line). A command no rule matches fails the test.
    """

    def __init__(self, name: str = "db1", address: str = "10.0.0.11") -> None:
        self.target = HostTarget(name=name, address=address)
        self.name = name
        self.address = address
        self.rules: list[Rule] = []
        self.calls: list[Call] = []

    def on(
        self,
        pattern: str | re.Pattern[str],
        stdout: str = "",
        *,
        stderr: str = "",
        exit_code: int = 0,
        times: int | None = None,
    ) -> FakeHost:
        self.rules.append(Rule(pattern, stdout, stderr, exit_code, times))
        return self

    @property
    def commands(self) -> list[str]:
        return [c.command for c in self.calls]

    def ran(self, fragment: str) -> bool:
        return any(fragment in c for c in self.commands)

    async def run(
        self,
        cmd: Command,
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        label: str | None = None,
        secrets: Sequence[SecretStr] = (),
    ) -> CommandResult:
        line = render_command(cmd)
        shown = mask(line, secrets)
        self.calls.append(Call(shown, input, timeout, label, secrets))
        rule = next((r for r in self.rules if r.matches(line)), None)
        if rule is None:
            raise AssertionError(f"FakeHost {self.name}: no scripted answer for: {line}")
        rule.used += 1
        result = CommandResult(
            host=self.name,
            command=shown,
            exit_code=rule.exit_code,
            stdout=rule.stdout,
            stderr=mask(rule.stderr, secrets),
            duration_s=0.0,
        )
        if check and not result.ok:
            raise CommandFailed(
                self.name,
                self.address,
                shown,
                result.exit_code,
                mask(stderr_tail(result.stderr or result.stdout), secrets),
            )
        return result

    async def run_all(self, cmds: Sequence[Command], **kw: object) -> list[CommandResult]:
        return [await self.run(c, **kw) for c in cmds]  # type: ignore[arg-type]

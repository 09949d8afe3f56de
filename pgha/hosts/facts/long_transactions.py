"""Transactions open longer than a bound on a PostgreSQL host: the gate before a rolling
operation. Read-only.

Why it gates: a switchover waits for nothing, so a transaction open on the primary is
rolled back when the primary stops, and its client sees an error; a long one on a
replica is cancelled when that replica restarts. pgha refuses to start (and names each
one) rather than cut them off; the operator ends them or waits.

Only client backends count (not autovacuum, WAL senders or pgha's own psql), and a
session idle outside a transaction holds nothing, so it does not count either.
"""

from __future__ import annotations

from pgha.hosts.facts.patroni import psql
from pgha.hosts.host import Host
from pgha.models import Model


class LongTransaction(Model):
    pid: int
    user: str
    database: str
    #: Whole seconds since the transaction began, rounded up.
    age_s: int
    state: str
    #: The first 80 characters of its current (or last) statement, on one line.
    query: str


def long_transactions_sql(older_than_s: int) -> str:
    """Tab-separated rows of the client transactions open longer than ``older_than_s``."""
    return (
        "SELECT pid, coalesce(usename, ''), coalesce(datname, ''),"
        " ceil(extract(epoch FROM clock_timestamp() - xact_start))::bigint, state,"
        " left(regexp_replace(query, '\\s+', ' ', 'g'), 80)"
        " FROM pg_catalog.pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()"
        " AND xact_start IS NOT NULL"
        f" AND xact_start < clock_timestamp() - make_interval(secs => {int(older_than_s)})"
        " ORDER BY xact_start"
    )


def parse_long_transactions(stdout: str) -> list[LongTransaction]:
    rows = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or not parts[0].isdigit():
            continue
        pid, user, db, age, state, query = parts
        rows.append(LongTransaction(pid=int(pid), user=user, database=db, age_s=int(age),
                                    state=state, query=query))  # fmt: skip
    return rows


async def long_transactions(host: Host, port: int, older_than_s: int) -> list[LongTransaction]:
    """The transactions on ``host``'s PostgreSQL open longer than ``older_than_s``.

    :raises CommandFailed: PostgreSQL does not run or refused the query.
    """
    out = await host.run(psql(port, long_transactions_sql(older_than_s)), label="psql")
    return parse_long_transactions(out.stdout)


def describe(host: str, found: list[LongTransaction]) -> str:
    """One line per transaction, for an error that names what blocks the operation."""
    return "\n".join(
        f"- {host}: pid {t.pid}, {t.user}@{t.database}, open {t.age_s} s ({t.state}): {t.query}"
        for t in found
    )

"""The long-transaction gate's query and its parser (the query itself ran on the lab's
PostgreSQL 15; see tests/lab for the gate on real sessions)."""

from __future__ import annotations

from pgha.hosts.facts.long_transactions import (
    describe,
    long_transactions_sql,
    parse_long_transactions,
)

RECORDED = (
    "4242\tapp\tappdb\t301\tidle in transaction\tUPDATE accounts SET balance = balance - 1\n"
    "4343\treport\tappdb\t45\tactive\tSELECT count(*) FROM orders o JOIN lines l ON true\n"
)


def test_parse_reads_each_transaction() -> None:
    rows = parse_long_transactions(RECORDED)
    assert [(r.pid, r.user, r.database, r.age_s, r.state) for r in rows] == [
        (4242, "app", "appdb", 301, "idle in transaction"),
        (4343, "report", "appdb", 45, "active"),
    ]
    assert rows[0].query.startswith("UPDATE accounts")


def test_parse_ignores_blank_and_foreign_lines() -> None:
    assert parse_long_transactions("\nSET\n") == []


def test_sql_counts_client_transactions_older_than_the_bound_only() -> None:
    sql = long_transactions_sql(30)
    assert "backend_type = 'client backend'" in sql and "xact_start IS NOT NULL" in sql
    assert "make_interval(secs => 30)" in sql and "pg_backend_pid()" in sql


def test_describe_names_host_pid_user_and_age() -> None:
    text = describe("db2", parse_long_transactions(RECORDED))
    assert text.splitlines()[0] == (
        "- db2: pid 4242, app@appdb, open 301 s (idle in transaction): "
        "UPDATE accounts SET balance = balance - 1"
    )

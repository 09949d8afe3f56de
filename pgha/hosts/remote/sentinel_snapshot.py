"""Runs ON a PostgreSQL host as the postgres OS user (python3-psycopg2 comes with Patroni):
write restore verification's sentinel on the primary and count every user table's rows
exactly as of the sentinel's commit. Prints one JSON object; errors go to stderr with
exit status 3 (PostgreSQL said no) or 4 (the lock could not be had).

Why a script: the exact count needs two sessions per database at once (one holding SHARE
locks, one taking a snapshot), which psql over SSH cannot do; peer authentication over the
local socket needs no password and no network path from pgha to PostgreSQL.

How the count is made exact without blocking writers while counting:
  1. locker (one per database): LOCK every user table IN SHARE MODE; writers of those
     tables finish first and new ones wait (lock_timeout bounds the wait);
  2. the postgres database's locker inserts the sentinel (its own table, not locked);
  3. counter (one per database): REPEATABLE READ, take the snapshot now; no user-table
     write can commit between it and step 4;
  4. commit the sentinel, release every lock: writers go on (the pause is reported);
  5. count in the counters' snapshots, which equal the state at the sentinel's commit:
     exactly what a recovery to the sentinel's transaction (inclusive) must show.
Usage: python3 - '<json args>' < this file
"""

import json
import sys
import time

import psycopg2
import psycopg2.errors
from psycopg2 import sql

ARGS = json.loads(sys.argv[1])
PORT = int(ARGS["port"])
SOCKET = ARGS.get("socket_dir", "/var/run/postgresql")
VALUE = ARGS["value"]
LOCK_TIMEOUT_MS = int(ARGS.get("lock_timeout_ms", 2000))
ATTEMPTS = int(ARGS.get("attempts", 5))
ARCHIVE_WAIT_S = float(ARGS.get("archive_wait_s", 180))

SENTINEL_DDL = """
CREATE SCHEMA IF NOT EXISTS pgha;
CREATE TABLE IF NOT EXISTS pgha.restore_sentinel (
    value text PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE pgha.restore_sentinel IS
    'pgha restore verification: one row per verification; a restored copy must hold it';
"""

# Tables whose rows a physical backup holds: ordinary tables and materialized views,
# permanent (unlogged tables come back empty by design, temporary ones are not backed up).
# Partitioned parents hold no rows of their own: their partitions are counted.
TABLES = """
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgha')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""


def connect(db):
    return psycopg2.connect(
        dbname=db, user="postgres", host=SOCKET, port=PORT, application_name="pgha-sentinel"
    )


def fail(code, message):
    sys.stderr.write(message.rstrip() + "\n")
    sys.exit(code)


def main():
    admin = connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_is_in_recovery()")
        if cur.fetchone()[0]:
            fail(3, "this server is a standby; the sentinel must be written on the primary")
        cur.execute(SENTINEL_DDL)
        cur.execute(
            "SELECT datname FROM pg_catalog.pg_database"
            " WHERE datallowconn AND NOT datistemplate ORDER BY 1"
        )
        databases = [r[0] for r in cur.fetchall()]
    lockers = {db: connect(db) for db in databases}
    tables = {}
    for db, conn in lockers.items():
        with conn.cursor() as cur:
            cur.execute(TABLES)
            tables[db] = cur.fetchall()
        conn.rollback()

    written = None
    for attempt in range(1, ATTEMPTS + 1):
        counters = {}
        started = time.monotonic()
        try:
            for db, conn in lockers.items():
                with conn.cursor() as cur:
                    cur.execute("SET LOCAL lock_timeout = %s", (f"{LOCK_TIMEOUT_MS}ms",))
                    if tables[db]:
                        names = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables[db])
                        cur.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(names))
            with lockers["postgres"].cursor() as cur:
                cur.execute(
                    "INSERT INTO pgha.restore_sentinel (value) VALUES (%s)"
                    " RETURNING written_at, pg_catalog.pg_current_xact_id()::text",
                    (VALUE,),
                )
                written_at, xid = cur.fetchone()
            for db in databases:
                counter = connect(db)
                counter.set_session(isolation_level="REPEATABLE READ", readonly=True)
                with counter.cursor() as cur:
                    cur.execute("SELECT 1")  # the snapshot is taken here
                counters[db] = counter
            lockers["postgres"].commit()
            paused_ms = (time.monotonic() - started) * 1000
            for conn in lockers.values():
                conn.rollback()
            written = (written_at, int(xid), paused_ms, attempt)
            break
        except psycopg2.errors.LockNotAvailable:
            for conn in [*lockers.values(), *counters.values()]:
                conn.rollback()
            time.sleep(min(2.0 * attempt, 10.0))
    if written is None:
        fail(
            4,
            f"could not lock the user tables within {LOCK_TIMEOUT_MS} ms in {ATTEMPTS} "
            "attempts: a long transaction holds a conflicting lock "
            "(see pg_locks/pg_stat_activity), or raise backup.verify.lock_timeout_ms",
        )
    written_at, xid, paused_ms, attempts = written

    counts = []
    for db, conn in counters.items():
        with conn.cursor() as cur:
            for schema, table in tables[db]:
                cur.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
                )
                counts.append(
                    {
                        "database": db,
                        "schema_name": schema,
                        "table": table,
                        "rows": cur.fetchone()[0],
                    }
                )
        conn.rollback()
        conn.close()

    # The sentinel's commit must reach the repository before any restore can contain it.
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_catalog.pg_current_wal_lsn()::text,"
            " pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())"
        )
        lsn, wal_file = cur.fetchone()
        cur.execute("SELECT pg_catalog.pg_switch_wal()")
        deadline = time.monotonic() + ARCHIVE_WAIT_S
        while True:
            cur.execute(
                "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''),"
                " coalesce(last_failed_time::text, '') FROM pg_catalog.pg_stat_archiver"
            )
            archived, failed, failed_at = cur.fetchone()
            if archived[:24] >= wal_file:
                break
            if time.monotonic() > deadline:
                why = f"; last failure: {failed} at {failed_at}" if failed else ""
                fail(
                    3,
                    f"WAL segment {wal_file} holding the sentinel was not archived within "
                    f"{ARCHIVE_WAIT_S:g} s (last archived: {archived or 'none'}{why}); "
                    "check archive_command and `pgbackrest check`",
                )
            time.sleep(0.5)
    print(
        json.dumps(
            {
                "value": VALUE,
                "written_at": written_at.isoformat(),
                "xid": xid,
                "lsn": lsn,
                "wal_file": wal_file,
                "row_counts": counts,
                "write_pause_ms": round(paused_ms, 1),
                "attempts": attempts,
            }
        )
    )


try:
    main()
except psycopg2.Error as err:
    fail(3, f"PostgreSQL: {str(err).strip()}")

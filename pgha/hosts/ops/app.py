"""Application roles and databases on the primary, through psql as the postgres OS user.

psql runs on the database host over SSH (peer authentication on the local socket), so it
works in every layout and needs no network access from the worker to PostgreSQL.
Passwords travel as SCRAM verifiers on psql's stdin: never in argv, logs or history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, SecretStr

from pgha.hosts.host import Host
from pgha.hosts.result import Outcome
from pgha.hosts.scram import scram_verifier, verifier_matches

PSQL = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]


class WantedRole(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    login: bool
    password: SecretStr | None
    member_of: list[str] = []


class WantedDatabase(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    owner: str
    extensions: list[str] = []


def ident(name: str) -> str:
    """A double-quoted SQL identifier (names are validated by the spec; quote anyway)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def query_rows(host: Host, sql: str, *, database: str = "postgres") -> list[list[str]]:
    """Rows of a read-only query as lists of text fields (unit separator between fields)."""
    out = await host.run([*PSQL, "-d", database, "-A", "-t", "-F", "\x1f", "-c", sql], label="psql")
    return [line.split("\x1f") for line in out.stdout.splitlines() if line]


async def ensure_roles(host: Host, wanted: Sequence[WantedRole]) -> Outcome:
    """Create missing roles, fix login flags, passwords that no longer verify, memberships.

    Idempotent: a role whose stored SCRAM verifier accepts the wanted password is left alone.
    """
    rows = await query_rows(
        host,
        "SELECT r.rolname, r.rolcanlogin, coalesce(r.rolpassword, ''),"
        " coalesce(string_agg(g.rolname, ',' ORDER BY g.rolname), '')"
        " FROM pg_catalog.pg_authid r"
        " LEFT JOIN pg_catalog.pg_auth_members m ON m.member = r.oid"
        " LEFT JOIN pg_catalog.pg_roles g ON g.oid = m.roleid"
        " GROUP BY r.rolname, r.rolcanlogin, r.rolpassword",
    )
    have = {r[0]: (r[1] == "t", r[2], set(filter(None, r[3].split(",")))) for r in rows}
    sql: list[str] = []
    done: list[str] = []
    secrets: list[SecretStr] = []
    for role in wanted:
        login = "LOGIN" if role.login else "NOLOGIN"
        password = role.password.get_secret_value() if role.password else None
        pw_clause = ""
        if role.name not in have:
            if password is not None:
                pw_clause = f" PASSWORD {literal(scram_verifier(password))}"
            sql.append(f"CREATE ROLE {ident(role.name)} {login}{pw_clause};")
            done.append(f"create role {role.name}")
            current_groups: set[str] = set()
        else:
            can_login, verifier, current_groups = have[role.name]
            if can_login != role.login:
                sql.append(f"ALTER ROLE {ident(role.name)} {login};")
                done.append(f"{login.lower()} {role.name}")
            if password is not None and not verifier_matches(verifier, password):
                sql.append(
                    f"ALTER ROLE {ident(role.name)} PASSWORD {literal(scram_verifier(password))};"
                )
                done.append(f"set password of {role.name}")
        for group in role.member_of:
            if group not in current_groups:
                sql.append(f"GRANT {ident(group)} TO {ident(role.name)};")
                done.append(f"grant {group} to {role.name}")
        if role.password:
            secrets.append(role.password)
    if not sql:
        return Outcome.unchanged(f"{len(wanted)} role(s) exist as wanted")
    await host.run(PSQL, input="\n".join(sql) + "\n", label="psql", secrets=secrets)
    return Outcome.made("; ".join(done), [f"psql: {d}" for d in done])


async def ensure_databases(host: Host, wanted: Sequence[WantedDatabase]) -> Outcome:
    """Create missing databases (owned as wanted), fix owners, create missing extensions."""
    rows = await query_rows(
        host,
        "SELECT datname, pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database",
    )
    owners: Mapping[str, str] = {r[0]: r[1] for r in rows}
    done: list[str] = []
    for db in wanted:
        if db.name not in owners:
            # CREATE DATABASE cannot run inside a transaction block: one statement per call.
            await host.run(
                [*PSQL, "-c", f"CREATE DATABASE {ident(db.name)} OWNER {ident(db.owner)}"],
                label="psql",
            )
            done.append(f"create database {db.name}")
        elif owners[db.name] != db.owner:
            await host.run(
                [*PSQL, "-c", f"ALTER DATABASE {ident(db.name)} OWNER TO {ident(db.owner)}"],
                label="psql",
            )
            done.append(f"owner of {db.name} -> {db.owner}")
        if db.extensions:
            present = {r[0] for r in await query_rows(
                host, "SELECT extname FROM pg_catalog.pg_extension", database=db.name
            )}  # fmt: skip
            for ext in db.extensions:
                if ext not in present:
                    await host.run(
                        [*PSQL, "-d", db.name, "-c", f"CREATE EXTENSION {ident(ext)}"],
                        label="psql",
                    )
                    done.append(f"extension {ext} in {db.name}")
    if not done:
        return Outcome.unchanged(f"{len(wanted)} database(s) exist as wanted")
    return Outcome.made("; ".join(done), [f"psql: {d}" for d in done])

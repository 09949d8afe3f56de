"""pgBackRest activities: SSH trust between the repository host and the database hosts,
config files, the stanza with its archive check, and the first full backup. Thin wrappers
over pgha.hosts.ops; they need no secret (SSH keys are made on the hosts, and only public
keys travel through the workflow).

Sides: the repository host runs pgBackRest as the render layer's ``REPO_USER`` and reaches
each database host as ``postgres``; each database host's ``postgres`` reaches the
repository host as ``REPO_USER`` (archive-push, archive-get).
"""

from __future__ import annotations

import json

from temporalio import activity

from pgha.activities.common import heartbeating, open_host
from pgha.activities.converge import param, permanent, step_result, translated
from pgha.activities.haproxy import PERMANENT, require_host, require_role
from pgha.hosts.facts.pgbackrest import Account, host_key
from pgha.hosts.facts.systemd import unit_state
from pgha.hosts.host import Host
from pgha.hosts.ops import pgbackrest as ops
from pgha.hosts.ops import pgbackrest_tls as tls
from pgha.hosts.ops import ssh_trust
from pgha.hosts.ops.ssh_trust import KeyUnusable, SshIdentity
from pgha.hosts.ops.systemd import ensure_unit
from pgha.hosts.result import Outcome
from pgha.render import pgbackrest_db_conf, pgbackrest_repo_conf
from pgha.render.pgbackrest import (
    CA_CERT,
    CLIENT_CERT,
    CLIENT_KEY,
    REPO_USER,
    SERVER_CERT,
    SERVER_KEY,
)
from pgha.spec import ClusterSpec, RepoHostType, Role
from pgha.steps import HostStep, StepResult

DB_USER = "postgres"
#: Debian's unit for `pgbackrest server` (runs as postgres, the repository user here).
SERVER_UNIT = "pgbackrest"
#: Bound on ensure_first_backup (params["within_s"] overrides): the lab's takes seconds; a
#: large database hours. The workflow's start-to-close timeout must be longer.
BACKUP_WITHIN_S = 6 * 3600.0

_PERMANENT = (*PERMANENT, KeyUnusable)


def _is_repo(inp: HostStep) -> bool:
    """True on the backup-repo host, False on a postgres host or a separate verify host
    (both reach the repository as its clients).

    :raises ValueError: the host is none of these (a workflow bug).
    """
    if Role.backup_repo in require_host(inp).roles:
        return True
    if _is_verify_client(inp.spec, inp.host):
        return False
    require_role(inp, Role.postgres)
    return False


def _is_verify_client(spec: ClusterSpec, host: str) -> bool:
    """The spec's verify host, when it is not the repository host itself."""
    verify = spec.verify_host()
    return verify is not None and verify.name == host and Role.backup_repo not in verify.roles


async def _account(host: Host, spec: ClusterSpec, repo: bool) -> tuple[Outcome, Account]:
    """The user pgBackRest runs as on this side; the repository user is made when missing
    (unless it is postgres, which the packages bring)."""
    return await ops.ensure_user(host, REPO_USER if repo else DB_USER, spec.backup.repo_path)


def _failed(err: ops.PgbackrestFailed) -> Exception:
    """Permanent pgBackRest errors stop the retries; the others stay retryable."""
    return permanent(str(err), "PgbackrestFailed") if err.permanent else err


@activity.defn(name="pgbackrest.ensure_keypair")
async def ensure_keypair(inp: HostStep) -> StepResult:
    """The pgBackRest user of this host (the repository user on the backup-repo host, made
    when missing; postgres on a database host) has an ed25519 key pair generated on the
    host. Idempotent; the private key never leaves the host.

    Facts (an :class:`SshIdentity`): ``host``, ``address``, ``user``, ``public_key``, and
    ``host_key`` (the host's /etc/ssh/ssh_host_ed25519_key.pub, read over pgha's verified
    SSH connection). The workflow hands them to the other side's ensure_trust.
    """
    async with translated(*_PERMANENT):
        repo = _is_repo(inp)
        async with heartbeating(), open_host(inp.target) as host:
            made, acct = await _account(host, inp.spec, repo)
            comment = f"pgha:{inp.spec.cluster}:{inp.host}:{acct.name}"
            keyed, public = await ssh_trust.ensure_keypair(host, acct, comment)
            hostkey = await host_key(host)
    me = SshIdentity(
        host=inp.host,
        address=inp.target.address,
        user=acct.name,
        public_key=public,
        host_key=hostkey,
    )
    return step_result(inp.host, [made, keyed], facts=me.model_dump())


def _peers(inp: HostStep, repo: bool) -> list[tuple[SshIdentity, str, int]]:
    """The peers of ``params["peers"]``, checked against the spec: each must be a host of
    the other side with that side's user. Addresses and ports come from the spec.

    :raises ValueError: a peer that is not who it should be (a workflow bug).
    """
    raw = json.loads(param(inp, "peers"))
    if not isinstance(raw, list):
        raise ValueError("params['peers'] must be a JSON list of ensure_keypair facts")
    spec = inp.spec
    want_role, want_user = (Role.postgres, DB_USER) if repo else (Role.backup_repo, REPO_USER)
    names = {h.name for h in spec.hosts_with(want_role)}
    if repo:
        names |= {h.name for h in spec.hosts if _is_verify_client(spec, h.name)}
    peers = []
    for item in raw:
        peer = SshIdentity.model_validate(item)
        if peer.host not in names or peer.user != want_user:
            raise ValueError(
                f"host {inp.host}: peer {peer.host}/{peer.user} is not a {want_role.value} host "
                f"with user {want_user}; pgBackRest trust is only between the repository "
                "host and the postgres hosts (and the verify host)"
            )
        target = spec.target(peer.host)
        peers.append((peer, target.address, target.port))
    return peers


@activity.defn(name="pgbackrest.ensure_trust")
async def ensure_trust(inp: HostStep) -> StepResult:
    """This host's pgBackRest user accepts the peers' keys (authorized_keys, each limited to
    its peer's address with ``from=``, and ``restrict``) and knows their host keys
    (known_hosts, from the peers' ensure_keypair facts: no ssh-keyscan). Idempotent; only
    pgha's block in each file changes.

    :param inp: ``params["peers"]``: a JSON list of the other side's ensure_keypair facts
        (on the repository host: every postgres host; on a postgres host: the repository).
    """
    async with translated(*_PERMANENT):
        repo = _is_repo(inp)
        peers = _peers(inp, repo)
        async with heartbeating(), open_host(inp.target) as host:
            _, acct = await _account(host, inp.spec, repo)
            outcome = await ssh_trust.ensure_trust(host, acct, inp.spec.cluster, peers)
    return step_result(
        inp.host, [outcome], facts={"user": acct.name, "peers": [p.host for p, _, _ in peers]}
    )


@activity.defn(name="pgbackrest.ensure_config")
async def ensure_config(inp: HostStep) -> StepResult:
    """/etc/pgbackrest.conf as rendered for this host's side, readable by the user that runs
    pgBackRest there (Debian ships it 0640 postgres), and its directories: on the
    repository host the repository (0750) and log directory, on a database host the
    spool and log directories. Idempotent; restarts nothing.
    """
    spec = inp.spec
    async with translated(*_PERMANENT):
        repo = _is_repo(inp)
        if repo:
            config = pgbackrest_repo_conf(spec, repo_user=REPO_USER)
            dirs = {spec.backup.repo_path: 0o750, ops.LOG_PATH: 0o750}
        else:
            config = pgbackrest_db_conf(spec, inp.host, repo_user=REPO_USER)
            dirs = {ops.SPOOL_PATH: 0o750, ops.LOG_PATH: 0o750}
        async with heartbeating(), open_host(inp.target) as host:
            _, acct = await _account(host, spec, repo)
            outcomes = [await ops.ensure_config(host, config, acct, dirs)]
            if repo:
                outcomes.append(await _ensure_server(host, spec, outcomes[0].changed))
            shadow = await ops.shadowing_config(host)
    return step_result(
        inp.host, outcomes, warnings=[shadow] if shadow else [], facts={"user": acct.name}
    )


async def _ensure_server(host: Host, spec: ClusterSpec, config_changed: bool) -> Outcome:
    """pgBackRest's TLS server runs (restarted when its config changed: it reads it at start)
    when the database hosts use TLS; it is stopped and disabled when they use SSH."""
    wanted = spec.backup.repo_host_type is RepoHostType.tls
    if wanted and config_changed:
        return await tls.restart_server(host, SERVER_UNIT)
    return await ensure_unit(host, SERVER_UNIT, running=wanted, enabled=wanted)


@activity.defn(name="pgbackrest.ensure_tls")
async def ensure_tls(inp: HostStep) -> StepResult:
    """On the repository host: the cluster's CA (made once, kept there), the TLS server's
    certificate, and a client certificate on every database host (its key made there;
    only the signing request and the certificate travel). Certificates the CA verifies,
    with the right name and valid for 30 more days, are kept. A new server certificate
    restarts a running TLS server. Idempotent.

    facts: ``issued`` (hosts that got a certificate, comma-separated).
    """
    spec = inp.spec
    async with translated(*_PERMANENT):
        me = require_role(inp, Role.backup_repo)
    addr = str(me.address)
    issued: list[str] = []
    async with heartbeating(), open_host(inp.target) as host:
        _, acct = await _account(host, spec, True)
        made, ca = await tls.ensure_ca(host, acct.name, f"pgha {spec.cluster} pgBackRest CA")
        outcomes = [made]
        if not await tls.cert_is_current(host, SERVER_CERT, ca, addr):
            request = await tls.signing_request(host, SERVER_KEY, acct.name, addr)
            names = [f"DNS:{addr}", f"IP:{addr}", f"DNS:{me.name}"]
            cert = await tls.sign(host, request, names, "serverAuth")
            outcomes.append(await tls.install_cert(host, SERVER_CERT, cert, acct.name))
            issued.append(f"{me.name} (server)")
            if (await unit_state(host, SERVER_UNIT)).active:
                outcomes.append(await tls.restart_server(host, SERVER_UNIT))
        for node in spec.hosts_with(Role.postgres):
            async with open_host(spec.target(node.name)) as client:
                outcomes.append(await tls.install_cert(client, CA_CERT, ca, DB_USER))
                if await tls.cert_is_current(client, CLIENT_CERT, ca, node.name):
                    continue
                request = await tls.signing_request(client, CLIENT_KEY, DB_USER, node.name)
                cert = await tls.sign(host, request, [], "clientAuth")
                outcomes.append(await tls.install_cert(client, CLIENT_CERT, cert, DB_USER))
                issued.append(node.name)
    result = step_result(inp.host, outcomes, facts={"issued": ",".join(issued)})
    if issued:
        return result.model_copy(update={"summary": f"issued TLS certificates for "
                                         f"{', '.join(issued)}; {result.summary}"})  # fmt: skip
    return result.model_copy(update={"summary": "TLS certificates of the repository and of "
                                     f"every database host are current ({CA_CERT})"})  # fmt: skip


@activity.defn(name="pgbackrest.ensure_stanza")
async def ensure_stanza(inp: HostStep) -> StepResult:
    """On the repository host: `stanza-create` when `info` says the stanza was never made,
    then `pgbackrest check` (the primary's WAL really reaches the repository). Needs the
    Patroni cluster running with pgBackRest's archive_command. Idempotent: on a converged
    cluster only the check runs (it switches WAL once), and the result is unchanged.

    Facts: ``stanza``, ``check_s`` (how long the check took).
    :raises ApplicationError: PgbackrestFailed, non-retryable for configuration errors
        (archiving off, another cluster's stanza...), with pgBackRest's ERROR/HINT lines;
        other failures (primary unreachable mid-failover, lock held) are retried.
    """
    stanza = inp.spec.stanza
    async with translated(*_PERMANENT):
        require_role(inp, Role.backup_repo)
        async with heartbeating(), open_host(inp.target) as host:
            try:
                _, acct = await _account(host, inp.spec, True)
                created = await ops.ensure_stanza(host, acct, stanza)
                took = await ops.check(host, acct, stanza)
            except ops.PgbackrestFailed as err:
                raise _failed(err) from None
    checked = Outcome.unchanged(f"pgbackrest check passed in {took:.1f} s")
    return step_result(
        inp.host, [created, checked], facts={"stanza": stanza, "check_s": round(took, 2)}
    )


@activity.defn(name="pgbackrest.ensure_first_backup")
async def ensure_first_backup(inp: HostStep) -> StepResult:
    """On the repository host: a full backup when `info` shows none, heartbeating while it
    runs; otherwise unchanged. A retry after a lost worker waits for the backup still
    running instead of starting another. ``params["within_s"]`` bounds the wait (default
    6 h).

    Facts about the latest backup: ``label``, ``type``, ``size`` (database bytes it
    covers), ``repo_size`` (bytes stored), ``duration_s``.
    """
    stanza = inp.spec.stanza
    async with translated(*_PERMANENT):
        require_role(inp, Role.backup_repo)
        within = float(inp.params.get("within_s", BACKUP_WITHIN_S))
        async with heartbeating(), open_host(inp.target) as host:
            try:
                _, acct = await _account(host, inp.spec, True)
                outcome, latest = await ops.ensure_full_backup(
                    host, acct, stanza, within=within, progress=activity.heartbeat
                )
            except ops.PgbackrestFailed as err:
                raise _failed(err) from None
    return step_result(
        inp.host,
        [outcome],
        facts={
            "label": latest.label,
            "type": latest.type,
            "size": latest.size,
            "repo_size": latest.repo_size,
            "duration_s": latest.duration_s,
        },
    )

"""Certificates for pgBackRest's TLS server: a cluster CA on the repository host, a server
certificate there, a client certificate on each database host. OpenSSL 3 on the hosts.

Why TLS and not SSH for archive-push/archive-get: every restore_command call during a
promotion is a pgBackRest process that connects to the repository; over SSH each costs
about 0.13 s even on a shared connection (pgBackRest waits 0.1 s for the ssh child to exit),
over TLS about 15 ms. A promotion makes three or four such calls, a switchover's write gap
is that much shorter (docs/failover-tuning.md).

Private keys never leave the host they were made on: a database host makes its key and a
signing request, the repository host signs it with the CA key it keeps (0600, readable by
its pgBackRest user only), and only certificates and requests travel. Idempotent: a
certificate that the CA verifies, names the wanted subject and is valid for at least
RENEW_BEFORE_S more is kept.
"""

from __future__ import annotations

import shlex

from pgha.hosts.facts.files import file_state
from pgha.hosts.host import Host, render_command
from pgha.hosts.ops.files import ensure_directory, ensure_file
from pgha.hosts.result import Outcome, combine
from pgha.render.pgbackrest import CA_CERT, CA_KEY, TLS_DIR

CA_SERIAL = f"{TLS_DIR}/ca.srl"
CA_DAYS = 3650
#: 825 days: the longest validity common TLS clients still accept for a leaf certificate.
LEAF_DAYS = 825
#: A certificate expiring sooner than this is renewed by the next provision.
RENEW_BEFORE_S = 30 * 86400
_NEW_KEY = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out"


async def ensure_ca(host: Host, owner: str, common_name: str) -> tuple[Outcome, str]:
    """The cluster's CA on the repository host, made once; returns it with its PEM text."""
    outcomes = [await ensure_directory(host, TLS_DIR, mode=0o750, owner=owner, group=owner)]
    # Both or neither: a CA certificate without its key cannot sign (every certificate made
    # from a new CA is issued again, since the old ones no longer verify).
    if not all([(await file_state(host, p)).exists for p in (CA_KEY, CA_CERT)]):
        make = (
            f"umask 077 && {_NEW_KEY} {CA_KEY} && openssl req -x509 -new -key {CA_KEY} "
            f"-days {CA_DAYS} -subj {shlex.quote('/CN=' + common_name)} -out {CA_CERT} && "
            f"chmod 0644 {CA_CERT} && chown {owner}:{owner} {CA_KEY} {CA_CERT}"
        )
        await host.run(["sh", "-c", make], label="make CA")
        outcomes.append(Outcome.made(f"made the pgBackRest CA {CA_CERT}", [f"sh -c {make!r}"]))
    pem = (await host.run(["cat", CA_CERT], label="read CA")).stdout
    made = combine(*outcomes)
    if not made.changed:
        made = Outcome.unchanged(f"the pgBackRest CA {CA_CERT} exists")
    return made, pem.strip() + "\n"


async def cert_is_current(host: Host, cert: str, ca_pem: str, common_name: str) -> bool:
    """``cert`` on ``host`` exists, is signed by the CA ``ca_pem``, names ``common_name``
    and stays valid for RENEW_BEFORE_S at least."""
    if not (await file_state(host, cert)).exists:
        return False
    check = (
        f"openssl verify -CAfile /dev/stdin {cert} >/dev/null && "
        f"openssl x509 -in {cert} -noout -checkend {RENEW_BEFORE_S} >/dev/null && "
        f"openssl x509 -in {cert} -noout -subject -nameopt RFC2253"
    )
    out = await host.run(["sh", "-c", check], input=ca_pem, check=False, label="check cert")
    return out.ok and out.stdout.strip() == f"subject=CN={common_name}"


async def signing_request(host: Host, key: str, owner: str, common_name: str) -> str:
    """A certificate signing request (PEM) for ``key``, made when missing (0600 ``owner``)."""
    if not (await file_state(host, key)).exists:
        await ensure_directory(host, TLS_DIR, mode=0o750, owner=owner, group=owner)
        make = f"umask 077 && {_NEW_KEY} {key} && chown {owner}:{owner} {key}"
        await host.run(["sh", "-c", make], label="make key")
    out = await host.run(["openssl", "req", "-new", "-key", key, "-subj", f"/CN={common_name}"],
                         label="signing request")  # fmt: skip
    return out.stdout


async def sign(host: Host, request_pem: str, alt_names: list[str], usage: str) -> str:
    """Sign ``request_pem`` with the CA on the repository host; returns the certificate.

    :param alt_names: subjectAltName entries, e.g. ``DNS:10.0.0.31``, ``IP:10.0.0.31``.
    :param usage: ``serverAuth`` or ``clientAuth``.
    """
    extensions = "\n".join(
        [
            "basicConstraints=CA:FALSE",
            f"extendedKeyUsage={usage}",
            *([f"subjectAltName={','.join(alt_names)}"] if alt_names else []),
        ]
    )
    script = (
        'set -eu; d=$(mktemp -d); trap \'rm -rf "$d"\' EXIT; cat > "$d/req.pem"; '
        f'printf %s {shlex.quote(extensions)} > "$d/ext"; '
        f'openssl x509 -req -in "$d/req.pem" -CA {CA_CERT} -CAkey {CA_KEY} '
        f'-CAserial {CA_SERIAL} -CAcreateserial -days {LEAF_DAYS} -extfile "$d/ext" 2>/dev/null'
    )
    out = await host.run(["sh", "-c", script], input=request_pem, label="sign certificate")
    return out.stdout


async def install_cert(host: Host, path: str, pem: str, owner: str) -> Outcome:
    """A certificate (or the CA's) at ``path``, 0644 ``owner``, in TLS_DIR made when missing."""
    return combine(
        await ensure_directory(host, TLS_DIR, mode=0o750, owner=owner, group=owner),
        await ensure_file(host, path, pem, mode=0o644, owner=owner, group=owner),
    )


async def restart_server(host: Host, unit: str) -> Outcome:
    """(Re)start pgBackRest's TLS server so it reads its config and certificate again, and
    keep it enabled. Debian's unit waits 3 s after the start before it reports success."""
    cmds = [["systemctl", "restart", unit], ["systemctl", "enable", unit]]
    await host.run_all(cmds)
    return Outcome.made(f"restarted {unit} (pgBackRest's TLS server)",
                        [render_command(c) for c in cmds])  # fmt: skip

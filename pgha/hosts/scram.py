"""SCRAM-SHA-256 password verifiers as PostgreSQL stores them (RFC 5802/7677). Pure.

pgha sends roles' passwords already hashed, so a plaintext password never reaches the
server's logs or ``pg_stat_activity``, and checks a stored verifier against the wanted
password without changing it (idempotent role convergence).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str:
    """``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`` for ``password``."""
    salt = salt if salt is not None else os.urandom(16)
    stored, server = _keys(password, salt, iterations)
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored).decode()}:{b64(server).decode()}"
    )


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored ``rolpassword`` accepts ``password`` (False for md5/none/garbage)."""
    if not verifier or not verifier.startswith("SCRAM-SHA-256$"):
        return False
    try:
        head, keys = verifier.removeprefix("SCRAM-SHA-256$").split("$", 1)
        iterations_s, salt_b64 = head.split(":", 1)
        stored_b64, server_b64 = keys.split(":", 1)
        salt = base64.b64decode(salt_b64)
        stored, server = _keys(password, salt, int(iterations_s))
    except ValueError:
        return False
    return hmac.compare_digest(base64.b64encode(stored).decode(), stored_b64) and (
        hmac.compare_digest(base64.b64encode(server).decode(), server_b64)
    )

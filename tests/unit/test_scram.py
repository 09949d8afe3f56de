"""SCRAM verifiers: the format PostgreSQL stores, and checks against a password."""

from __future__ import annotations

from pgha.hosts.scram import scram_verifier, verifier_matches

# Made by PostgreSQL 15: SET password_encryption='scram-sha-256'; CREATE ROLE x PASSWORD 'secret'
# then SELECT rolpassword FROM pg_authid WHERE rolname='x'; (salt from that output).
PG_MADE = (
    "SCRAM-SHA-256$4096:sVxmHAeb1YFsrPfsNrb4Ew==$"
    "sIh8Vfd2ODwFkgNEaz8SyFN/2VFZJN1owYEEhtqCpQU=:"
    "HTkAx4D+nbR5QA+oVUuI6d9rgqL3upWXn6d7Vp/L0gA="
)


def test_scram_verifier_roundtrip_matches_only_its_password() -> None:
    v = scram_verifier("s3cret")
    assert v.startswith("SCRAM-SHA-256$4096:")
    assert verifier_matches(v, "s3cret")
    assert not verifier_matches(v, "s3cret ")


def test_scram_verifier_deterministic_for_given_salt() -> None:
    salt = bytes(range(16))
    assert scram_verifier("pw", salt=salt) == scram_verifier("pw", salt=salt)


def test_verifier_matches_rejects_md5_empty_and_garbage() -> None:
    assert not verifier_matches(None, "x")
    assert not verifier_matches("md5abcdef", "x")
    assert not verifier_matches("SCRAM-SHA-256$nonsense", "x")

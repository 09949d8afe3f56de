"""Parsers of the live cluster's own reports (Patroni REST, etcdctl, HAProxy CSV, pgBackRest
JSON) into status models. Pure: fed recorded output in tests."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pgha.status_models import (
    Backend,
    BackupSet,
    BackupStatus,
    EtcdMember,
    EtcdStatus,
    Member,
    PatroniStatus,
)


def parse_patroni_cluster(text: str, source: str) -> PatroniStatus:
    """Patroni's ``GET /cluster``: members with role, state, timeline and lag."""
    data = json.loads(text)
    members = []
    for m in data.get("members", []):
        lag = m.get("lag")
        members.append(
            Member(
                name=str(m.get("name", "")),
                host=str(m.get("host", "")),
                role=str(m.get("role", "")),
                state=str(m.get("state", "")),
                timeline=m.get("timeline") if isinstance(m.get("timeline"), int) else None,
                lag_bytes=lag if isinstance(lag, int) else None,
            )
        )
    return PatroniStatus(members=members, source=source)


def parse_etcd(status_json: str, health_json: str) -> EtcdStatus:
    """``etcdctl endpoint status -w json`` and ``endpoint health -w json`` of every member."""
    statuses: list[dict[str, Any]] = json.loads(status_json) if status_json.strip() else []
    health: list[dict[str, Any]] = json.loads(health_json) if health_json.strip() else []
    healthy = {h.get("endpoint"): bool(h.get("health")) for h in health}
    members = []
    for s in statuses:
        st = s.get("Status", {})
        header = st.get("header", {})
        members.append(
            EtcdMember(
                endpoint=str(s.get("Endpoint", "")),
                healthy=healthy.get(s.get("Endpoint"), False),
                leader=header.get("member_id") == st.get("leader") and st.get("leader") is not None,
                version=str(st.get("version", "")),
            )
        )
    for endpoint, ok in healthy.items():  # members that answered health but not status
        if not any(m.endpoint == endpoint for m in members):
            members.append(EtcdMember(endpoint=str(endpoint), healthy=ok, leader=False))
    return EtcdStatus(members=sorted(members, key=lambda m: m.endpoint))


def parse_haproxy_csv(text: str) -> list[Backend]:
    """HAProxy's stats CSV: the state of every server line (not FRONTEND/BACKEND rows)."""
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [
        Backend(listener=r["pxname"], server=r["svname"], status=r["status"])
        for r in rows
        if r.get("svname") not in ("FRONTEND", "BACKEND", None) and r.get("pxname") != "stats"
    ]


def parse_pgbackrest_info(text: str, stanza: str) -> BackupStatus:
    """``pgbackrest info --output=json`` for one stanza."""
    data = json.loads(text)
    entry = next((s for s in data if s.get("name") == stanza), None)
    if entry is None:
        return BackupStatus(stanza=stanza, status="missing stanza", backups=[])
    backups = [
        BackupSet(
            label=b["label"],
            type=b["type"],
            started=int(b["timestamp"]["start"]),
            stopped=int(b["timestamp"]["stop"]),
            size_bytes=int(b["info"]["size"]),
            repo_size_bytes=int(b["info"]["repository"]["size"]),
        )
        for b in entry.get("backup", [])
    ]
    return BackupStatus(
        stanza=stanza, status=str(entry.get("status", {}).get("message", "")), backups=backups
    )

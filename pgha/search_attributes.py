"""The search attributes pgha tags every operation with (Web UI filters, visibility). Pure."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CLUSTER_ATTR = SearchAttributeKey.for_keyword("PghaCluster")
OPERATION_ATTR = SearchAttributeKey.for_keyword("PghaOperation")
SEARCH_ATTRIBUTES = (CLUSTER_ATTR, OPERATION_ATTR)

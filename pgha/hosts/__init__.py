"""Hosts over SSH: connections, facts (read) and ops (converge). Never imports temporalio."""

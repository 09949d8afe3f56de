"""pgha: highly available PostgreSQL clusters operated by durable Temporal workflows."""

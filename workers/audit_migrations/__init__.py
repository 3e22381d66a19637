"""Alembic migrations of the audit store; `workers.audit_store.migrate(url)` runs them at start."""

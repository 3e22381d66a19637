"""Revisions of the audit store schema, oldest first (Alembic skips this file)."""

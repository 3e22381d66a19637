"""Idempotency keys: a record handed off twice (a stream redelivery, a Redis stall) is stored once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

audit_records.idem_key   the key the audit relay gave the record when the API handed it off; NULL for
                         records written before this revision or without one. Unique (NULLs never
                         conflict), so the store's INSERT ... ON CONFLICT (idem_key) DO NOTHING leaves a
                         redelivered record out. The key is not hashed: every chain written before this
                         revision verifies as it did, and adding the column changes no record (no UPDATE
                         runs, so the append-only triggers have nothing to refuse).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_records", sa.Column("idem_key", sa.String(128), nullable=True))
    op.create_index("audit_records_idem_key", "audit_records", ["idem_key"], unique=True)


class AppendOnly(RuntimeError):
    """Raised by `downgrade`: a hash-chained, append-only trail is never migrated backwards."""


def downgrade() -> None:
    raise AppendOnly("the audit trail is append-only: there is no downgrade")

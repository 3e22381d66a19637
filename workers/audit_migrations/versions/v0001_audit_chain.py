"""The audit chain: records, the chain head, and triggers that keep both append-only.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

audit_records      one row per record: seq (1, 2, ... without gaps), at and kind (index columns, checked
                   against the body by `r1cds audit verify`), prev_hash, hash, body (the canonical JSON)
audit_chain_head   exactly one row (id 1): the seq and hash of the newest record. Writers lock it
                   (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the whole database, BEGIN IMMEDIATE) to
                   take the next position, so concurrent writers never fork the chain; it also lets
                   verification notice records removed from the end.

Triggers refuse what the store never does: updating or deleting a record, a record that does not extend
the head, a head that moves backwards or to a record that does not exist, removing the head. They stop
mistakes and casual edits; someone who drops them is still caught by the hash chain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64

_SQLITE = (
    """CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
       BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
       BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER audit_records_extend_head BEFORE INSERT ON audit_records
       WHEN NEW.seq != (SELECT seq FROM audit_chain_head WHERE id = 1) + 1
         OR NEW.prev_hash != (SELECT hash FROM audit_chain_head WHERE id = 1)
       BEGIN SELECT RAISE(ABORT, 'an audit record must extend the chain head'); END""",
    """CREATE TRIGGER audit_chain_head_advance BEFORE UPDATE ON audit_chain_head
       WHEN NEW.id != OLD.id OR NEW.seq <= OLD.seq
         OR NOT EXISTS (SELECT 1 FROM audit_records WHERE seq = NEW.seq AND hash = NEW.hash)
       BEGIN SELECT RAISE(ABORT, 'the chain head only advances to a stored record'); END""",
    """CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
       BEGIN SELECT RAISE(ABORT, 'the chain head cannot be removed'); END""",
)

_POSTGRESQL = (
    """CREATE FUNCTION r1cds_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit records are append-only'; END $$""",
    """CREATE FUNCTION r1cds_audit_extend_head() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE head RECORD;
       BEGIN
         SELECT seq, hash INTO head FROM audit_chain_head WHERE id = 1;
         IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
           RAISE EXCEPTION 'an audit record must extend the chain head';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE FUNCTION r1cds_audit_advance_head() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.id <> OLD.id OR NEW.seq <= OLD.seq
            OR NOT EXISTS (SELECT 1 FROM audit_records WHERE seq = NEW.seq AND hash = NEW.hash) THEN
           RAISE EXCEPTION 'the chain head only advances to a stored record';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER audit_records_no_change BEFORE UPDATE OR DELETE ON audit_records
       FOR EACH ROW EXECUTE FUNCTION r1cds_audit_append_only()""",
    """CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
       FOR EACH STATEMENT EXECUTE FUNCTION r1cds_audit_append_only()""",
    """CREATE TRIGGER audit_records_extend_head BEFORE INSERT ON audit_records
       FOR EACH ROW EXECUTE FUNCTION r1cds_audit_extend_head()""",
    """CREATE TRIGGER audit_chain_head_advance BEFORE UPDATE ON audit_chain_head
       FOR EACH ROW EXECUTE FUNCTION r1cds_audit_advance_head()""",
    """CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
       FOR EACH ROW EXECUTE FUNCTION r1cds_audit_append_only()""",
    """CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
       FOR EACH STATEMENT EXECUTE FUNCTION r1cds_audit_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False
        ),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.CheckConstraint("seq >= 1", name="audit_records_seq_positive"),
        sa.UniqueConstraint("hash", name="audit_records_hash_unique"),
    )
    op.create_index("audit_records_at", "audit_records", ["at"])
    chain_head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="audit_chain_head_single_row"),
    )
    op.bulk_insert(chain_head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    statements = _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(sa.text(statement))


class AppendOnly(RuntimeError):
    """Raised by `downgrade`: a hash-chained, append-only trail is never migrated backwards."""


def downgrade() -> None:
    raise AppendOnly("the audit trail is append-only: there is no downgrade")

"""Alembic environment of the audit store.

`workers.audit_store.migrate(url)` hands in a connection that is already inside a locked transaction
(SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so that several processes starting at once run
the migrations one after the other; Alembic then adds no transaction of its own. Run from a shell
(`alembic -x url=...` with a config naming `script_location = workers:audit_migrations`), it connects to
that URL itself. The version table has its own name so that the audit store can share a database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

VERSION_TABLE = "r1cds_audit_alembic_version"


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url")
    return url


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), literal_binds=True, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as own:
        context.configure(connection=own, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()


run()

"""The body of every service's Alembic ``env.py``: run migrations on a given or new connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData

from tacso_shared.db import make_engine


def run(metadata: MetaData) -> None:
    """Run the migrations of ``metadata``'s service, online (offline mode prints SQL)."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or ""
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()

"""Alembic environment: runs against the engine handed over by :class:`rpacs.db.Database`."""

from alembic import context

from rpacs.db.models import Base

engine = context.config.attributes["connection_engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()

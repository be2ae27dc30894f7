"""Alembic environment: always run on a connection handed over by `plinth.db`."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - we never run alembic from its own CLI
    raise RuntimeError("Plinth migrations run through plinth.db.Database.migrate()")

context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()

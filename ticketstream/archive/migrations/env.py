"""Alembic environment: runs on the connection handed over by `store.migrate` (no alembic.ini,
no URL of its own), so the archiver, the CLI and the tests migrate exactly the database they use."""

from alembic import context

from ticketstream.archive.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: migrations run on a connection handed in by ``Database.migrate``.

``python app.py migrate`` is the way to run them; there is no alembic.ini.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python app.py migrate`")

context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()

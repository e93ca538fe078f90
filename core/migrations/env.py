"""Alembic's environment: runs against the engine handed over by core.db.init_db."""

from alembic import context

from core.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from core.config import db_url_from_env
    from core.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or db_url_from_env())

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()

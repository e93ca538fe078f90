"""The migrations build the schema the models describe: tables, columns, indexes and keys, on every backend."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.models import Base


def test_the_migrated_schema_is_the_models_schema(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []

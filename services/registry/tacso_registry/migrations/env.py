"""Alembic environment of the registry."""

from tacso_registry.models import Base
from tacso_shared.migration_env import run

run(Base.metadata)

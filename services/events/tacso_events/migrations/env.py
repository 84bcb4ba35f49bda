"""Alembic environment of the events service."""

from tacso_events.models import Base
from tacso_shared.migration_env import run

run(Base.metadata)

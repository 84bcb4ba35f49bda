"""Alembic environment of notify."""

from tacso_notify.models import Base
from tacso_shared.migration_env import run

run(Base.metadata)

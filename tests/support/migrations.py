"""Data-migration tests: migrate the database back to an app's migration, write rows through the
models of that state, then migrate forward and read the result through today's code."""

import contextlib
from collections.abc import Iterator

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@contextlib.contextmanager
def apps_at(migration: tuple[str, str]) -> Iterator[Apps]:
    """The apps as they were at `migration` (the other apps at their latest, so their historical
    models match their tables), on a database migrated back to it; migrated to the latest state
    again whatever happens."""
    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != migration[0]]
    try:
        executor.migrate([migration, *others])
        executor.loader.build_graph()
        yield executor.loader.project_state([migration, *others]).apps
    finally:
        migrate_to_latest()


def migrate_through(migration: tuple[str, str]) -> None:
    """Forward to `migration`, then to the latest state."""
    MigrationExecutor(connection).migrate([migration])
    migrate_to_latest()


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

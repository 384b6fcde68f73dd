"""Shared fixtures: real Redis and PostgreSQL where a test asks for them, never mocks."""

import os
import socket
from pathlib import Path

import pytest
from django.db import connection

from tests.support.browser import chromium  # noqa: F401 (a fixture for every browser test)

FIXTURES = Path(__file__).parent / "fixtures"
IN_CI = bool(os.environ.get("CI"))


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests run in the PostgreSQL pass; the SQLite pass leaves them out loudly."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")):
        return
    kept, left = [], []
    for item in items:
        (left if item.get_closest_marker("postgres") else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
        print(f"\n{len(left)} PostgreSQL tests left for the PostgreSQL pass (DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    from config.celery import app

    # Celery reads the Django setting live, and it wins over app.conf's own key.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def fixture_path():
    return lambda name: FIXTURES / name


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url():
    """A real Redis (TEST_REDIS_URL, default db 15); in CI a missing server is a failure, not a skip."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not _answers(parts.hostname or "127.0.0.1", parts.port or 6379):
        message = f"Redis is not answering at {url}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.fail("this test is marked postgres and must run against PostgreSQL")
    return True

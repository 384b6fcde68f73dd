"""Shared fixtures: real Redis, PostgreSQL and SMTP where a test asks for them, never mocks.

The browser fixtures (tests/support/browser.py) and the real broker (tests/support/broker.py) are
plugins, so every test can ask for them by name.
"""

import os
import socket
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from hypothesis import settings as hypothesis_settings

from config.celery import app as celery_app
from tests.support import IN_CI, shared
from tests.support.digest_samples import make_paper, seed_papers
from tests.support.feed_server import FeedServer
from tests.support.smtp_sink import SmtpSink

pytest_plugins = ["tests.support.browser", "tests.support.broker"]

# No per-example time limit: on a loaded 2-core machine an example can take 300 ms once (a timing
# bound is not what these property tests check, and hypothesis's 200 ms default failed them there).
hypothesis_settings.register_profile("paperboy", deadline=None)
hypothesis_settings.load_profile("paperboy")

# What the project wrote itself (the DSN samples); captured feeds are read from ../shared/feeds.
FIXTURES = Path(__file__).parent / "fixtures"


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
    # Celery reads the Django setting live, and it wins over app.conf's own key.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def fixture_path():
    """A file the project wrote itself, in tests/fixtures/."""
    return lambda name: FIXTURES / name


@pytest.fixture
def shared_feed():
    """A captured feed in ../shared/feeds/: missing, the test skips, or fails in CI."""
    return shared.shared_feed


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


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what waits for the commit (queued emails, tasks) at the end of the block, as production does."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def staff(client, db):
    """A logged-in superuser."""
    user = User.objects.create_user("ops", "ops@example.org", "pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def sink(request, settings):
    """A real SMTP server (aiosmtpd) the settings send to, without and with PIPELINING."""
    with SmtpSink(pipelining=request.param) as server:
        for name, value in server.email_settings().items():
            setattr(settings, name, value)
        yield server


@pytest.fixture
def papers(db):
    """The first eight papers of the seed page."""
    return [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:8])]


@pytest.fixture
def arxiv(settings):
    """A local HTTP server standing in for the arXiv API (liked-paper fetches), no host delay."""
    settings.FEED_HOST_DELAY_SECONDS = 0
    settings.FEED_TIMEOUT_SECONDS = 2
    with FeedServer() as server:
        settings.ARXIV_API_URL = server.url("/api/query")
        yield server

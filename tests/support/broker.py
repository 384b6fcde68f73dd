"""Fixtures that send tasks through a real broker (Redis, or kombu's filesystem transport)
instead of running them eagerly, or to a broker that refuses them; and what waits in the queues."""

import kombu.pools
import pytest
from django.conf import settings as django_settings
from kombu.transport.filesystem import Transport

from config.celery import app as celery_app
from tests.support.servers import free_port


@pytest.fixture
def broker_and_cache_on(settings):
    """Point the cache (rate limits) and the Celery broker at a Redis, with tasks really queued."""
    saved_retry = celery_app.conf.broker_connection_retry

    def point(url: str) -> None:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
            }
        }
        settings.CELERY_TASK_ALWAYS_EAGER = False
        celery_app.conf.task_always_eager = False
        # Celery reads the Django settings live, and they win over app.conf.
        settings.CELERY_BROKER_URL = url
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1}
        settings.CELERY_BROKER_CONNECTION_RETRY = False
        celery_app.conf.broker_connection_retry = False
        reset_connections()

    def reset_connections() -> None:
        kombu.pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        # The task-sent event's dispatcher, and the sender holding it, keep the event exchange made
        # for the first broker they met: its type differs by transport (fanout on Redis, topic on
        # the filesystem), so a later broker's event receivers would never see task-sent.
        for cached in ("_event_dispatcher", "send_task_message"):
            celery_app.amqp.__dict__.pop(cached, None)

    yield point
    celery_app.conf.broker_connection_retry = saved_retry
    reset_connections()


@pytest.fixture
def filesystem_queue(settings, tmp_path, broker_and_cache_on):
    """Tasks really queued through the filesystem broker, in a folder of this test's own, with the
    local-memory cache (`make run`); yields the folder the messages land in."""
    # kombu keeps the filesystem transport's bindings in one process-wide state, and a binding it
    # already holds is not written to another control folder: left from here, it would make the
    # next test's messages to that queue undeliverable, silently dropped.
    Transport.global_state.clear()
    folder = tmp_path / "queue"
    folder.mkdir()
    broker_and_cache_on("redis://unused")  # not eager, fresh producer pools
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }
    yield folder
    Transport.global_state.clear()


@pytest.fixture
def refusing_broker(settings, broker_and_cache_on):
    """Tasks sent to a Redis port nobody listens on, as when the broker has stopped: every publish
    is refused. The cache stays the local-memory one."""
    broker_and_cache_on(f"redis://127.0.0.1:{free_port()}/0")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def queued_tasks() -> list[tuple[str, list]]:
    """Take every waiting message off every queue (matching and sending have their own): (task
    name, args)."""
    taken = []
    with celery_app.connection_for_read() as connection:
        for name in django_settings.CELERY_TASK_QUEUES:
            queue = connection.SimpleQueue(name)
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    break
                taken.append((message.headers["task"], message.payload[0]))
                message.ack()
            queue.close()
    return taken

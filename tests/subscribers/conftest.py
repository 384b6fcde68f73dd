"""The real queue the subscribers' tests ask for by name."""

import pytest
from django.conf import settings
from django.core.cache import cache

from config.celery import app


@pytest.fixture(params=["filesystem", "redis"])
def real_queue(request, settings, tmp_path, broker_and_cache_on):
    """Tasks really queued: the filesystem broker with the local-memory cache (`make run`), or
    Redis as broker and cache (production)."""
    from kombu.transport.filesystem import Transport

    # kombu keeps the filesystem broker's bindings in one process-wide state: a binding left from
    # here would route other tests' messages to this test's folder.
    request.addfinalizer(Transport.global_state.clear)
    Transport.global_state.clear()
    if request.param == "redis":
        broker_and_cache_on(request.getfixturevalue("redis_url"))
    else:
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
    cache.clear()
    return request.param


def queued_tasks() -> list[tuple[str, list]]:
    """Take every waiting message off every queue (matching and sending have their own): (task
    name, args)."""
    taken = []
    with app.connection_for_read() as connection:
        for name in settings.CELERY_TASK_QUEUES:
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

"""The real queue the subscribers' tests ask for by name."""

import pytest
from django.conf import settings
from django.core.cache import cache

from config.celery import app


@pytest.fixture(params=["filesystem", "redis"])
def real_queue(request, broker_and_cache_on):
    """Tasks really queued: the filesystem broker with the local-memory cache (`make run`), or
    Redis as broker and cache (production)."""
    if request.param == "redis":
        broker_and_cache_on(request.getfixturevalue("redis_url"))
    else:
        request.getfixturevalue("filesystem_queue")
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

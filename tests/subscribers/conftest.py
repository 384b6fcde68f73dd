"""The real queue the subscribers' tests ask for by name."""

import pytest
from django.core.cache import cache


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

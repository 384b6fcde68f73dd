"""A fixture that sends tasks through a real Redis broker instead of running them eagerly."""

import kombu.pools
import pytest

from config.celery import app as celery_app


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

    yield point
    celery_app.conf.broker_connection_retry = saved_retry
    reset_connections()

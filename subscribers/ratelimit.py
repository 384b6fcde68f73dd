"""Fixed-window rate limits kept in the Django cache (Redis when configured, local memory otherwise).

When the cache is unreachable the request is allowed and the failure logged: a signup page that
keeps answering beats a perfect limit, and the hourly email cap in the database still holds.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

log = logging.getLogger(__name__)

HOUR = 3600


def _key(scope: str, identity: str, window: int) -> str:
    # Hashed so that the cache never holds email addresses.
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}:{int(time.time() // window)}"


def hit(scope: str, identity: str, limit: int, window: int = HOUR) -> bool:
    """Count one attempt by `identity`; True while it stays within `limit` per `window` seconds."""
    key = _key(scope, identity, window)
    try:
        cache.add(key, 0, timeout=window + 60)
        try:
            count = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            cache.set(key, 1, timeout=window + 60)
            count = 1
    except Exception:
        log.warning("rate limit cache unavailable, allowing the request (scope %s)", scope, exc_info=True)
        return True
    return count <= limit


def attempts(scope: str, identity: str, window: int = HOUR) -> int:
    """How many attempts `identity` made in the current window, without counting one (0 if the
    cache is unreachable, like `hit`)."""
    try:
        return int(cache.get(_key(scope, identity, window)) or 0)
    except Exception:
        log.warning("rate limit cache unavailable, allowing the request (scope %s)", scope, exc_info=True)
        return 0


def client_ip(request: HttpRequest) -> str:
    if settings.BEHIND_PROXY:
        # Our proxy appends the address it saw; anything before it the client could have written.
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR", "")


def signup_allowed(request: HttpRequest, email: str | None) -> bool:
    """Per client IP for every post, per address once we know which address it is."""
    if not hit("signup-ip", client_ip(request), settings.SIGNUP_RATE_PER_IP):
        return False
    return email is None or hit("signup-address", email.lower(), settings.SIGNUP_RATE_PER_ADDRESS)


def manage_allowed(subscriber_id: int) -> bool:
    """Per subscriber, whichever of their links the posts come through."""
    return hit("manage", str(subscriber_id), settings.MANAGE_RATE_PER_SUBSCRIBER)

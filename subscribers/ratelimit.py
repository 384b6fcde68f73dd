"""Sliding-window rate limits kept in the Django cache (Redis when configured, local memory otherwise).

Attempts are counted in BUCKETS buckets per window, and an attempt is judged on the last window's
buckets (the oldest weighted by how much of it still lies within the window). A fixed window let
a client spend its limit just before a boundary and again just after it: twice the limit within
seconds, and an admin lockout that ended the moment the clock turned.

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


BUCKETS = 15


def _prefix(scope: str, identity: str) -> str:
    # Hashed so that the cache never holds email addresses.
    return f"ratelimit:{scope}:{hashlib.sha256(identity.encode()).hexdigest()[:32]}:"


def _buckets(window: int) -> tuple[int, float, float]:
    """The current bucket's number, the share of the oldest bucket still within the window, and
    how long a bucket must be kept."""
    width = window / BUCKETS
    now = time.time()
    return int(now // width), 1.0 - (now % width) / width, window + width + 60


def _count(scope: str, identity: str, bucket: int, share: float) -> float:
    """Attempts in the last window, the current bucket included."""
    prefix = _prefix(scope, identity)
    keys = [f"{prefix}{number}" for number in range(bucket - BUCKETS, bucket + 1)]
    found = cache.get_many(keys)
    counts = [int(found.get(key) or 0) for key in keys]
    return share * counts[0] + sum(counts[1:])


def hit(scope: str, identity: str, limit: int, window: int = HOUR) -> bool:
    """Count one attempt by `identity`; True while it stays within `limit` per `window` seconds."""
    bucket, share, keep = _buckets(window)
    key = f"{_prefix(scope, identity)}{bucket}"
    try:
        cache.add(key, 0, timeout=keep)
        try:
            cache.incr(key)
        except ValueError:  # the key expired between add and incr
            cache.set(key, 1, timeout=keep)
        count = _count(scope, identity, bucket, share)
    except Exception:
        log.warning("rate limit cache unavailable, allowing the request (scope %s)", scope, exc_info=True)
        return True
    return count <= limit


def attempts(scope: str, identity: str, window: int = HOUR) -> float:
    """How many attempts `identity` made in the last `window` seconds, as `hit` counts them,
    without counting one; 0 if the cache is unreachable, like `hit`."""
    bucket, share, _ = _buckets(window)
    try:
        return _count(scope, identity, bucket, share)
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

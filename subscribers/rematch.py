"""At most one waiting re-match per subscriber, however often their preferences change.

Changing preferences re-matches the subscriber against the last MATCH_RECENT_DAYS of papers, which
takes seconds over a large paper table; thirty saves in a row queued thirty of them. Now a cache
key (Redis when REDIS_URL is set) says "one is queued and has not started yet":

1. After a change commits, `queue_rematch` adds the key; only the caller that added it queues
   the task. A change while the key stands queues nothing: the waiting task has not read the
   preferences yet, so it will read these.
2. The task calls `started` first, which deletes the key, and only then reads the preferences.
   A change that commits after that adds the key again and queues the next re-match, so the last
   preferences saved are always the ones matched.

A task lost with its broker leaves the key behind; it expires after PENDING_SECONDS, and the next
change queues again. Without a reachable cache every change queues, as before.
"""

import logging

from django.core.cache import cache

from config.celery import queue

log = logging.getLogger(__name__)

# Longer than a re-match normally waits in the queue; a second one may be queued after that.
PENDING_SECONDS = 15 * 60


def _key(subscriber_id: int) -> str:
    return f"rematch-pending:{subscriber_id}"


def queue_rematch(subscriber_id: int) -> bool:
    """Queue a re-match unless one is already waiting; True if this call queued it."""
    try:
        first = cache.add(_key(subscriber_id), 1, timeout=PENDING_SECONDS)
    except Exception:
        log.warning("re-match cache unavailable, queueing without coalescing", exc_info=True)
        first = True
    if not first:
        return False
    try:
        queue("digest.match_recent_papers", subscriber_id)
    except Exception:
        # The change is saved and the page answers; the next change queues a re-match again.
        log.exception("could not queue a re-match for subscriber %s", subscriber_id)
        started(subscriber_id)
        return False
    return True


def started(subscriber_id: int) -> None:
    """Called by the task before it reads the preferences: later changes queue a new re-match."""
    try:
        cache.delete(_key(subscriber_id))
    except Exception:
        log.warning("re-match cache unavailable", exc_info=True)

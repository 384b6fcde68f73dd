"""A global limit on messages per second, shared by every worker through Redis.

Fixed windows counted with INCR: each window of `1/rate` seconds (at least one second) lets
`rate x window` messages through, and a sender that finds its window full sleeps until the next.
A window boundary can let up to twice the allowance through in one second, which is fine for
protecting a sender's reputation and needs one round trip per message. Without REDIS_URL the
count lives in the process, so the limit applies per worker.
"""

import math
import threading
import time
from collections.abc import Callable

from django.conf import settings

KEY_PREFIX = "paperboy:send-rate:"


class SendRateLimiter:
    def __init__(
        self,
        per_second: float,
        redis_url: str = "",
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.per_second = per_second
        self.window = max(1.0, 1.0 / per_second) if per_second > 0 else 1.0
        self.allowance = max(1, round(per_second * self.window)) if per_second > 0 else 0
        self.clock = clock
        self.sleep = sleep
        self._redis = None
        if redis_url and per_second > 0:
            import redis

            self._redis = redis.Redis.from_url(redis_url)
        self._lock = threading.Lock()
        self._local_window = -1
        self._local_count = 0

    def _count(self, window: int) -> int:
        if self._redis is not None:
            key = f"{KEY_PREFIX}{window}"
            pipe = self._redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, math.ceil(self.window) + 1)
            return int(pipe.execute()[0])
        with self._lock:
            if window != self._local_window:
                self._local_window, self._local_count = window, 0
            self._local_count += 1
            return self._local_count

    def acquire(self) -> float:
        """Wait for a slot; returns the seconds spent waiting."""
        if self.allowance == 0:
            return 0.0
        waited = 0.0
        while True:
            now = self.clock()
            window = int(now // self.window)
            if self._count(window) <= self.allowance:
                return waited
            pause = (window + 1) * self.window - now
            self.sleep(pause)
            waited += pause


_limiters: dict[tuple[float, str], SendRateLimiter] = {}


def send_rate_limiter() -> SendRateLimiter:
    """The process's limiter for the current settings (one per process keeps the local count)."""
    key = (float(settings.SEND_RATE_PER_SECOND), settings.REDIS_URL or "")
    if key not in _limiters:
        _limiters[key] = SendRateLimiter(*key)
    return _limiters[key]

"""`/healthz`: is the database answering, is the broker reachable, when did ingest and dispatch last
work, are mail servers refusing our digests.

A load balancer or uptime checker needs only the status code: 200 when the database and the
broker are up, 503 when either is down. Stale ingest or dispatch times are reported, not judged:
how old is too old depends on the schedule the operator chose. The status says "degraded" (still
200: the site works, mail does not) when mail servers refused more than MESSAGE_REFUSAL_ALARM_RATE
of the digests tried over the last MESSAGE_REFUSAL_WINDOW_MINUTES as messages
(digest/delivery/refusal_alarm.py): a monitor that reads the body can page someone.

Anyone may ask, so an anonymous caller gets status words only (`for_anonymous`): no folder paths,
error texts, versions or times. The full report is for a logged-in operator (staff) or a caller
sending `Authorization: Bearer <HEALTHZ_TOKEN>`.
"""

import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from digest.delivery.refusal_alarm import message_refusals
from digest.models import Delivery, Feed
from digest.ops.access import staff_or_bearer

PROBE_TIMEOUT_SECONDS = 2.0


def redis_client(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _timed(probe: Callable[[], dict[str, object] | None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = probe() or {}
        result = {"ok": True, **detail}
    except Exception as exc:  # whatever broke, the answer is "down" and why
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database(database: BaseDatabaseWrapper = connection) -> dict[str, Any]:
    def probe():
        with database.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"vendor": database.vendor}

    return _timed(probe)


def check_broker() -> dict[str, Any]:
    """Redis answers PING; or, for the filesystem broker, its queue folder takes a new file."""
    if settings.REDIS_URL:

        def probe():
            redis_client(settings.REDIS_URL).ping()
            return {"kind": "redis"}
    else:

        def probe():
            folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
            fd, name = tempfile.mkstemp(dir=folder, prefix=".healthz-")
            os.close(fd)
            os.unlink(name)
            return {"kind": "filesystem", "folder": str(folder)}

    return _timed(probe)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def last_runs() -> dict[str, str | None]:
    """The last successful feed poll and the last digest sent (two queries)."""
    return {
        "last_ingest": _iso(Feed.objects.aggregate(at=Max("last_success_at"))["at"]),
        "last_dispatch": _iso(Delivery.objects.aggregate(at=Max("sent_at"))["at"]),
    }


def refused_messages() -> dict[str, Any]:
    """Digests tried and refused as messages over the alarm's window (one query)."""
    recent = message_refusals()
    return {
        "window_minutes": recent.minutes,
        "tried": recent.tried,
        "refused": recent.refused,
        "rate": round(recent.rate, 4),
        "alarm": recent.alarming,
    }


def health(database_connection: BaseDatabaseWrapper = connection) -> tuple[bool, dict[str, Any]]:
    database = check_database(database_connection)
    broker = check_broker()
    report: dict[str, Any] = {"database": database, "broker": broker}
    if database["ok"]:
        report.update(last_runs())
        report["refused_messages"] = refused_messages()
    else:
        report.update({"last_ingest": None, "last_dispatch": None, "refused_messages": None})
    healthy = database["ok"] and broker["ok"]
    degraded = healthy and report["refused_messages"]["alarm"]
    return healthy, {"status": "degraded" if degraded else "ok" if healthy else "down", **report}


STATUS_WORDS = frozenset({"ok", "degraded", "down"})


def for_anonymous(report: dict[str, Any]) -> dict[str, Any]:
    """The report reduced to status words: the overall one and one per component."""
    public: dict[str, Any] = {}
    for name, value in report.items():
        if name == "status" and value in STATUS_WORDS:
            public[name] = value
        elif isinstance(value, dict) and "ok" in value:
            word = value.get("status")
            public[name] = word if word in STATUS_WORDS else ("ok" if value["ok"] else "down")
    return public


def sees_details(request: HttpRequest) -> bool:
    """A logged-in operator, or a probe holding HEALTHZ_TOKEN (compared in constant time)."""
    return staff_or_bearer(request, settings.HEALTHZ_TOKEN)


@never_cache
@require_safe
def healthz(request):
    healthy, report = health()
    shown = report if sees_details(request) else for_anonymous(report)
    return JsonResponse(shown, status=200 if healthy else 503)

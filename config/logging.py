"""Logging: one JSON object per line (LOG_JSON), and one line per event with its fields.

`log_event` logs an event's ids, counts and durations as fields. With LOG_JSON they become keys of
the JSON object (`JsonFormatter` keeps `extra`); otherwise they follow the event name as
`key=value` pairs, so a plain log stays grep-able.
"""

import json
import logging
from typing import Any

# Attributes a LogRecord already has: a JSON line leaves them out, and an `extra` key with one of
# these names would raise KeyError.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def _plain(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c.isspace() or c in '"=' for c in text) else text


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log `event` with `fields`, e.g. log_event(log, "ingest.feed", feed_id=3, new=12, ms=840)."""
    if not logger.isEnabledFor(level):
        return
    pairs = " ".join(f"{key}={_plain(value)}" for key, value in fields.items())
    extra = {("field_" + key if key in _STANDARD else key): value for key, value in fields.items()}
    extra["event"] = event
    logger.log(level, f"{event} {pairs}".rstrip(), extra=extra)

import json
import logging

import pytest

from config.logging import log_event, timed_event
from config.logging import JsonFormatter


def test_it_logs_one_plain_line_with_the_fields_as_pairs(caplog):
    caplog.set_level(logging.INFO)
    log_event(logging.getLogger("paperboy.test"), "ingest.feed", feed_id=3, new=12, url="https://a.example/rss", error="")
    assert caplog.messages == ['ingest.feed feed_id=3 new=12 url=https://a.example/rss error=""']


def test_with_the_json_formatter_the_fields_become_keys(caplog):
    caplog.set_level(logging.INFO)
    log_event(logging.getLogger("paperboy.test"), "send.chunk", deliveries=100, sent=98, failed=2, ms=840, name="x y")
    payload = json.loads(JsonFormatter().format(caplog.records[0]))
    assert payload["event"] == "send.chunk"
    assert (payload["deliveries"], payload["sent"], payload["failed"], payload["ms"]) == (100, 98, 2, 840)
    assert payload["field_name"] == "x y"  # a LogRecord attribute name is kept, prefixed
    assert payload["logger"] == "paperboy.test"


def test_a_timed_event_adds_its_duration_and_what_the_block_found(caplog):
    caplog.set_level(logging.INFO)
    with timed_event(logging.getLogger("paperboy.test"), "match.chunk", run_id=1) as fields:
        fields["candidates"] = 5
    record = caplog.records[0]
    assert record.run_id == 1 and record.candidates == 5 and record.ms >= 0


def test_a_failing_timed_event_is_logged_as_an_error_and_raises(caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(ZeroDivisionError):
        with timed_event(logging.getLogger("paperboy.test"), "match.chunk", run_id=1):
            1 / 0
    assert caplog.records[0].levelno == logging.ERROR
    assert caplog.records[0].error == "ZeroDivisionError"

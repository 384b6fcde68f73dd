import json
import logging

from config.logging import JsonFormatter, log_event


def test_it_logs_one_plain_line_with_the_fields_as_pairs(caplog):
    caplog.set_level(logging.INFO)
    log_event(
        logging.getLogger("paperboy.test"), "ingest.feed", feed_id=3, new=12, url="https://a.example/rss", error=""
    )
    assert caplog.messages == ['ingest.feed feed_id=3 new=12 url=https://a.example/rss error=""']


def test_with_the_json_formatter_the_fields_become_keys(caplog):
    caplog.set_level(logging.INFO)
    log_event(logging.getLogger("paperboy.test"), "send.chunk", deliveries=100, sent=98, failed=2, ms=840, name="x y")
    payload = json.loads(JsonFormatter().format(caplog.records[0]))
    assert payload["event"] == "send.chunk"
    assert (payload["deliveries"], payload["sent"], payload["failed"], payload["ms"]) == (100, 98, 2, 840)
    assert payload["field_name"] == "x y"  # a LogRecord attribute name is kept, prefixed
    assert payload["logger"] == "paperboy.test"

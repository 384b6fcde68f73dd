"""Flower works against our broker: a real worker started with the project's settings (no -E
flag) and the project's producer send the task events Flower reads, through a real Redis."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config.celery import app
from tests.support import ROOT
from tests.support.servers import ThrowawayRedis

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TASK_EVENTS = {"task-sent", "task-received", "task-started", "task-succeeded"}


class EventListener:
    """What `celery events` and Flower do: a receiver on the broker's event exchange, in a thread."""

    def __init__(self):
        self.events: list[dict] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": self.events.append})
            announce = receiver.on_consume_ready

            def on_consume_ready(*args, **kwargs):
                announce(*args, **kwargs)
                self.ready.set()

            receiver.on_consume_ready = on_consume_ready
            try:
                for _ in receiver.consume(timeout=60, wakeup=False):
                    if self.done.is_set():
                        return
            except TimeoutError:
                return

    def of_task(self, task_id: str) -> set[str]:
        return {event["type"] for event in list(self.events) if event.get("uuid") == task_id}


def start_worker(redis_url: str, tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PAPERBOY_VAR_DIR": str(tmp_path / "var"),
    }
    command = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"events{time.time_ns()}@%h",
    ]
    log = (tmp_path / "worker.log").open("ab")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_a_worker_and_a_producer_with_our_settings_send_every_task_event_flower_shows(tmp_path, broker_and_cache_on):
    with ThrowawayRedis() as redis:
        broker_and_cache_on(redis.url())
        listener = EventListener()
        listener.thread.start()
        assert listener.ready.wait(15), "the event receiver never subscribed"
        worker = start_worker(redis.url(), tmp_path)
        try:
            task_id = app.send_task("celery.accumulate", args=[1, 2]).id
            deadline = time.monotonic() + 60
            while listener.of_task(task_id) < TASK_EVENTS and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            listener.done.set()
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        listener.thread.join(5)

    log = (tmp_path / "worker.log").read_text()[-3000:]
    assert listener.of_task(task_id) >= TASK_EVENTS, log
    assert any(event["type"] == "worker-online" for event in listener.events), log

"""Faults under load: digests to a local SMTP sink through real Celery workers, real Redis and
real PostgreSQL, while workers are SIGKILLed, two dispatchers race, Redis and PostgreSQL restart.

    .venv/bin/python bench/stress_digests.py                    # 10,000 digests per phase
    .venv/bin/python bench/stress_digests.py --digests 1000     # a quick run

Everything it stops or restarts is its own: a throwaway redis-server on an ephemeral port and a
throwaway PostgreSQL cluster (initdb in a temporary folder), see tests/support/servers.py. The
machine's own servers are never touched. The SMTP sink (aiosmtpd, its own process) appends one
line per accepted message (recipient, Message-ID), and the counts come from that file: a digest
is lost when its recipient got nothing in the phase, duplicated when they got two.

Phases, each a fresh digest for every subscriber (a new period):
  kills      the dispatcher queues N digests; all workers are SIGKILLed --kills times in a row
             mid-batch and restarted.
  dispatch   two dispatcher processes claim the same due subscribers at the same moment.
  redis      Redis is killed mid-batch (its queue is lost: no persistence) and restarted.
  postgres   PostgreSQL is restarted mid-batch.
  ingest     PostgreSQL is restarted while feeds are being stored.
As `beat` would, the driver queues `digest.retry_deliveries` every --sweep seconds: it requeues
deliveries a dead worker or a lost queue left behind. Last line machine-readable.
"""

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import ThrowawayPostgres, ThrowawayRedis  # noqa: E402

PHASES = ("kills", "dispatch", "redis", "postgres", "ingest")


# --- the SMTP sink, in a process of its own -----------------------------------------------------


def run_sink(port_out, log_path: str) -> None:
    import asyncio
    import email.parser
    import email.policy

    from aiosmtpd.smtp import SMTP

    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open until the process is killed

    class Recording:
        async def handle_DATA(self, server, session, envelope):
            message_id = parser.parsebytes(envelope.content).get("Message-ID", "").strip()
            for recipient in envelope.rcpt_tos:
                log.write(f"{recipient.lower()}\t{message_id}\n")
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Recording(), hostname="sink"), "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


def received_lines(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [tuple(line.split("\t", 1)) for line in lines if "\t" in line]


# --- workers ------------------------------------------------------------------------------------


class Workers:
    def __init__(self, count: int, concurrency: int, env: dict, log: Path):
        self.count, self.concurrency, self.env, self.log = count, concurrency, env, log
        self.processes: list[subprocess.Popen] = []
        self.killed = 0

    def start(self) -> None:
        celery = str(Path(sys.executable).with_name("celery"))
        for number in range(self.count):
            command = [
                celery,
                "-A",
                "config",
                "worker",
                f"--concurrency={self.concurrency}",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"stress{number}-{time.time_ns()}@%h",
            ]
            # A session of its own, so that one killpg reaches the worker and its pool children.
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env,
                    stdout=self.log.open("ab"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
                self.killed += 1
        self.processes = []

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes = []


# --- the driver -----------------------------------------------------------------------------------


class Stress:
    def __init__(self, args, redis: ThrowawayRedis, postgres: ThrowawayPostgres, folder: Path, sink_log: Path):
        self.args, self.redis, self.postgres, self.folder, self.sink_log = args, redis, postgres, folder, sink_log
        self.results: dict[str, dict] = {}
        self.faults: Counter = Counter()

    # setup
    def populate(self) -> None:
        from subscribers.models import Subscriber

        Subscriber.objects.bulk_create(
            (
                Subscriber(email=f"reader{n:05d}@example.org", status=Subscriber.Status.ACTIVE, timezone="UTC")
                for n in range(self.args.digests)
            ),
            batch_size=2000,
        )

    def make_due(self, phase_number: int) -> None:
        """Every subscriber due again, at a slot of its own day, with fresh papers waiting."""
        from django.utils import timezone

        from digest.models import Candidate, Paper
        from subscribers.models import Subscriber
        from tests.support.digest_samples import seed_papers

        slot = timezone.now() - timedelta(days=30 - phase_number)
        Subscriber.objects.update(next_delivery_at=slot)
        papers = []
        for index, (title, abstract) in enumerate(seed_papers()[:3]):
            arxiv_id = f"2611.{phase_number:02d}{index:03d}"
            papers.append(
                Paper.objects.create(
                    arxiv_id=arxiv_id,
                    guid=arxiv_id,
                    title=title,
                    abstract=abstract,
                    authors=["Ada Lovelace", "Alan Turing"],
                    categories=["cs.LG"],
                    url=f"https://arxiv.org/abs/{arxiv_id}",
                )
            )
        ids = list(Subscriber.objects.values_list("id", flat=True))
        Candidate.objects.bulk_create(
            (
                Candidate(subscriber_id=s, paper=p, score=1 - rank / 10, reason="similar to your interests")
                for s in ids
                for rank, p in enumerate(papers)
            ),
            batch_size=5000,
        )

    # observing
    def phase_deliveries(self, since_id: int):
        from digest.models import Delivery

        return Delivery.objects.filter(id__gt=since_id)

    def wait_until_done(self, since_id: int, expected: int, workers: Workers, label: str) -> float:
        from django.db import connection

        from digest.models import Delivery

        started = time.monotonic()
        deadline = started + self.args.phase_timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            try:
                rows = self.phase_deliveries(since_id)
                total = rows.count()
                open_rows = rows.filter(status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]).count()
            except Exception as error:  # the database may be restarting
                connection.close()
                print(f"  [{label}] waiting for the database: {type(error).__name__}", flush=True)
                time.sleep(0.5)
                continue
            if total >= expected and open_rows == 0:
                return time.monotonic() - started
            if time.monotonic() - last_report > 5:
                print(
                    f"  [{label}] {total - open_rows}/{expected} done, {len(received_lines(self.sink_log))} "
                    f"messages at the sink",
                    flush=True,
                )
                last_report = time.monotonic()
            time.sleep(0.2)
        raise SystemExit(
            f"{label}: not finished within {self.args.phase_timeout} s; worker log {self.folder / 'worker.log'}"
        )

    def count(self, since_id: int, label: str, seconds: float) -> dict:
        from digest.models import Delivery

        time.sleep(2)  # anything sent twice arrives now
        rows = list(
            self.phase_deliveries(since_id).values_list("status", "message_id", "subscriber__email", "attempts")
        )
        phase_ids = {message_id for _, message_id, _, _ in rows if message_id}
        copies = Counter(pair for pair in received_lines(self.sink_log) if pair[1] in phase_ids)
        per_recipient = Counter(rcpt for rcpt, _ in copies.elements())
        digests_per_recipient = Counter(rcpt for rcpt, _ in copies)
        per_subscriber = Counter(email for _, _, email, _ in rows)
        statuses = Counter(status for status, _, _, _ in rows)
        result = {
            "deliveries": len(rows),
            "sent": statuses[Delivery.Status.SENT],
            "received": sum(per_recipient.values()),
            # Two different digests (Message-IDs) for one recipient in one period: a real duplicate.
            "duplicates": sum(n - 1 for n in digests_per_recipient.values() if n > 1),
            # The same message accepted twice: the worker died (or lost the database) after the
            # server took the message and before the row said so; resent with the same Message-ID.
            "resent": sum(n - 1 for n in copies.values() if n > 1),
            "lost": sum(1 for email in per_subscriber if per_recipient[email.lower()] == 0),
            "double_rows": sum(n - 1 for n in per_subscriber.values() if n > 1),
            "retried": sum(1 for *_, attempts in rows if attempts > 1),
            "seconds": round(seconds, 1),
        }
        self.results[label] = result
        print(f"{label}: " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        return result

    def sweeper(self, stop: threading.Event) -> None:
        """What beat does every minute, more often: requeue retries and abandoned deliveries."""
        from celery import Celery

        producer = Celery("stress-beat", broker=self.redis.url())
        while not stop.wait(self.args.sweep):
            try:
                producer.send_task("digest.retry_deliveries")
            except Exception as error:  # Redis may be down right now; beat would try again too
                print(f"  [beat] could not queue the sweep: {type(error).__name__}", flush=True)

    def sent_count(self, since_id: int) -> int:
        from django.db import connection

        from digest.models import Delivery

        try:
            return self.phase_deliveries(since_id).filter(status=Delivery.Status.SENT).count()
        except Exception:
            connection.close()
            return 0

    def wait_for_sent(self, since_id: int, count: int) -> None:
        deadline = time.monotonic() + self.args.phase_timeout
        while self.sent_count(since_id) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    # phases
    def last_delivery_id(self) -> int:
        from django.db.models import Max

        from digest.models import Delivery

        return Delivery.objects.aggregate(last=Max("id"))["last"] or 0

    def run_phase(self, number: int, label: str, workers: Workers, fault, dispatchers: int = 1) -> None:
        from django.db import connections

        from digest.delivery.dispatch import dispatch_due

        print(f"--- {label} ---", flush=True)
        self.make_due(number)
        since = self.last_delivery_id()
        connections.close_all()
        started = time.monotonic()
        created = len(dispatch_due()) if dispatchers == 1 else self.race_dispatchers(dispatchers)
        print(f"  dispatched {created} deliveries", flush=True)
        workers.start()
        fault(since, created, workers)
        self.wait_until_done(since, created, workers, label)
        self.count(since, label, time.monotonic() - started)
        workers.stop()

    def race_dispatchers(self, count: int) -> int:
        """`count` processes run the dispatcher at the same instant; returns the rows created."""
        go = time.time() + 3
        code = (
            "import time, django; django.setup()\n"
            "from digest.delivery.dispatch import dispatch_due\n"
            f"time.sleep(max(0, {go} - time.time()))\n"
            "print(len(dispatch_due()))\n"
        )
        processes = [
            subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        created = [int(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in processes]
        print(f"  the {count} dispatchers created {created} deliveries", flush=True)
        self.results["dispatchers"] = {"created": created}
        return sum(created)

    def kill_repeatedly(self, since: int, expected: int, workers: Workers) -> None:
        for kill in range(1, self.args.kills + 1):
            self.wait_for_sent(since, expected * kill // (self.args.kills + 2))
            workers.kill()
            self.faults["worker SIGKILL"] += 1
            print(
                f"  SIGKILLed every worker ({workers.killed} processes so far) at "
                f"{self.sent_count(since)}/{expected} sent",
                flush=True,
            )
            time.sleep(0.5)
            workers.start()

    def restart_redis(self, since: int, expected: int, workers: Workers) -> None:
        self.wait_for_sent(since, expected // 3)
        self.redis.stop()
        self.faults["Redis killed and restarted (queue lost)"] += 1
        print(f"  Redis killed at {self.sent_count(since)}/{expected} sent; down for {self.args.down} s", flush=True)
        time.sleep(self.args.down)
        self.redis.start()

    def restart_postgres(self, since: int, expected: int, workers: Workers) -> None:
        self.wait_for_sent(since, expected // 3)
        at = self.sent_count(since)
        self.postgres.restart("fast", down_seconds=self.args.down)
        self.faults["PostgreSQL restarted while sending"] += 1
        print(f"  PostgreSQL restarted at {at}/{expected} sent (down {self.args.down} s)", flush=True)

    def ingest_with_restart(self) -> None:
        """Feeds of many papers on a local server; PostgreSQL restarts while they are stored."""
        from django.db import connection

        from digest.models import Feed, Paper, PaperSource
        from digest.papers.ingestion import ingest_all
        from tests.support.feed_server import FeedServer, Route

        print("--- ingest ---", flush=True)
        entries = self.args.feed_entries
        with FeedServer() as server:
            feeds = []
            for number in range(4):
                server.routes[f"/feed{number}"] = Route(
                    body=rss(number, entries), headers={"Content-Type": "application/rss+xml"}
                )
                feeds.append(Feed.objects.create(url=server.url(f"/feed{number}"), name=f"stress feed {number}"))

            def restart_when_feed_two_is_fetched() -> None:
                while not any(path == "/feed2" for path, _ in server.requests):
                    time.sleep(0.001)
                self.postgres.restart("fast")
                self.faults["PostgreSQL restarted while ingesting"] += 1

            restarter = threading.Thread(target=restart_when_feed_two_is_fetched)
            restarter.start()
            started = time.monotonic()
            try:
                first = ingest_all(feeds)
                first_errors = [r.error for r in first if r.failed]
            except Exception as error:  # the database went away under the whole run
                first_errors = [f"ingest_all raised {type(error).__name__}: {error}"]
            restarter.join()
            connection.close()
            per_feed_after_fault = [PaperSource.objects.filter(feed=feed).count() for feed in feeds]
            second = ingest_all(Feed.objects.filter(pk__in=[f.pk for f in feeds]).order_by("url"))
            per_feed_after_retry = [PaperSource.objects.filter(feed=feed).count() for feed in feeds]
        half_written = sum(1 for n in per_feed_after_fault if n not in (0, entries))
        result = {
            "feeds": len(feeds),
            "entries_per_feed": entries,
            "stored_after_fault": per_feed_after_fault,
            "stored_after_retry": per_feed_after_retry,
            "half_written": half_written,
            "errors": first_errors,
            "retry_failed": sum(r.failed for r in second),
            "papers": Paper.objects.filter(guid__startswith="http://stress.example/").count(),
            "seconds": round(time.monotonic() - started, 1),
        }
        self.results["ingest"] = result
        print("ingest: " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)

    def run(self) -> None:
        self.populate()
        workers = Workers(self.args.workers, self.args.concurrency, self.env, self.folder / "worker.log")
        stop = threading.Event()
        sweeper = threading.Thread(target=self.sweeper, args=(stop,), daemon=True)
        sweeper.start()
        try:
            plan = {
                "kills": (self.kill_repeatedly, 1),
                "dispatch": (lambda *a: None, 2),
                "redis": (self.restart_redis, 1),
                "postgres": (self.restart_postgres, 1),
            }
            for number, label in enumerate(PHASES, 1):
                if label not in self.args.phases:
                    continue
                if label == "ingest":
                    self.ingest_with_restart()
                    continue
                fault, dispatchers = plan[label]
                self.run_phase(number, label, workers, fault, dispatchers)
        finally:
            stop.set()
            workers.kill()


def rss(number: int, entries: int) -> bytes:
    items = "".join(
        f"<item><title>Stress paper {number}-{i} on neural fields</title>"
        f"<link>http://stress.example/{number}/{i}</link><guid>http://stress.example/{number}/{i}</guid>"
        f"<description>An abstract about implicit neural representations, number {i}.</description>"
        f"<author>Ada Lovelace</author></item>"
        for i in range(entries)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Stress {number}</title>'
        f"<link>http://stress.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digests", type=int, default=10_000, help="subscribers, so digests per phase")
    parser.add_argument("--workers", type=int, default=3, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--kills", type=int, default=3, help="times every worker is SIGKILLed in the kills phase")
    parser.add_argument("--chunk", type=int, default=25, help="DIGEST_CHUNK_SIZE")
    parser.add_argument("--sending-timeout", type=int, default=60, help="SENDING_TIMEOUT_SECONDS")
    parser.add_argument("--sweep", type=float, default=10.0, help="seconds between two retry sweeps (beat)")
    parser.add_argument("--down", type=float, default=3.0, help="seconds Redis or PostgreSQL stays down")
    parser.add_argument("--feed-entries", type=int, default=3000, help="papers per feed in the ingest phase")
    parser.add_argument("--phase-timeout", type=float, default=1200.0)
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]

    folder = Path(tempfile.mkdtemp(prefix="paperboy-stress-"))
    sink_log = folder / "sink.log"
    ctx = multiprocessing.get_context("fork")
    port_in, port_out = ctx.Pipe(duplex=False)
    sink = ctx.Process(target=run_sink, args=(port_out, str(sink_log)), daemon=True)
    sink.start()
    smtp_port = port_in.recv()
    started = time.monotonic()

    with ThrowawayRedis() as redis, ThrowawayPostgres() as postgres:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": postgres.create_database("paperboy_stress"),
            "DB_CONN_MAX_AGE": "60",
            "REDIS_URL": redis.url(),
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            # Shorter than in production so that a run recovers in a minute, not hours; still well
            # above the time a live worker needs for one chunk, or a slow chunk would be reclaimed.
            "CELERY_VISIBILITY_TIMEOUT": "120",
            "SENDING_TIMEOUT_SECONDS": str(args.sending_timeout),
            "SEND_RETRY_BASE_SECONDS": "1",
            "SEND_RETRY_MAX_SECONDS": "5",
            "SEND_RATE_PER_SECOND": "0",
            "DIGEST_CHUNK_SIZE": str(args.chunk),
            "PAPERBOY_VAR_DIR": str(folder / "var"),
            "FEED_HOST_DELAY_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        stress = Stress(args, redis, postgres, folder, sink_log)
        stress.env = env
        try:
            stress.run()
        finally:
            sink.terminate()

    results = stress.results
    digest_phases = [r for label, r in results.items() if label in PHASES and label != "ingest"]
    sent = sum(r["received"] for r in digest_phases)
    duplicates = sum(r["duplicates"] for r in digest_phases)
    resent = sum(r["resent"] for r in digest_phases)
    lost = sum(r["lost"] for r in digest_phases)
    kills = stress.faults["worker SIGKILL"]
    half_written = results.get("ingest", {}).get("half_written", 0)
    print("faults survived: " + ", ".join(f"{what} x{n}" for what, n in stress.faults.items()))
    print(f"logs in {folder}")
    seconds = time.monotonic() - started
    print(
        f"digests={args.digests} kills={kills} duplicates={duplicates} lost={lost} seconds={seconds:.0f} "
        f"resent_same_message_id={resent} phases={len(digest_phases)} messages={sent} "
        f"faults={sum(stress.faults.values())} half_written={half_written}"
    )
    if duplicates or lost or half_written:
        sys.exit(1)


if __name__ == "__main__":
    main()

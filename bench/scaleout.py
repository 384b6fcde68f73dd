"""Scale-out: the same digests through two Celery workers, one beat and Redis as in one process.

    .venv/bin/python bench/scaleout.py --subscribers 20000 --papers 2000
    .venv/bin/python bench/scaleout.py --subscribers 100000 --database-url postgres://postgres@127.0.0.1:5432/paperboy_scaleout

Generates papers and subscribers as bench/digests.py does, then produces every subscriber's digest
twice into an SMTP sink (aiosmtpd, a process of its own) that records, per recipient, the papers of
each digest in the order the email shows them:

1. **Through the broker**: a throwaway redis-server, a worker on the `matching` queue and a worker
   on the `sending` queue (`celery -A config worker -Q ...`, subprocesses), and one `beat`. Beat
   queues `match_new_papers` (a run over all the papers, its chunks fanned out to the matching
   worker); once the run is finished the subscribers' slots come, and beat queues
   `dispatch_digests` on the sending queue, whose chunks the sending worker sends.
2. **In process**: the matches, deliveries and slots of step 1 are deleted, and this process
   runs the same functions directly (`start_match_run`, `match_chunk`, `dispatch_due`,
   `send_delivery_chunk`), one after the other, with no broker.

Then it compares the two: the same recipients, each with the same papers in the same order, and
the candidates each path stored (subscriber, paper, score). A run ranks papers by their recency as
of its start, so the in-process run is started with the clock set back to the start of the
workers' run (time-machine, a dev dependency). Beat only ever runs alone (it is stopped between
its matching and sending phases); its ticks while the run is under way start no second run, so
each path makes one. The figures include beat's first tick (its interval, `--tick` seconds) in
each phase's wall time; the times taken from the rows (a match run's start to its last chunk, the
first delivery created to the last digest accepted) leave beat's ticks and the polling out, and are
measured the same way for both paths. Last line machine-readable.
"""

import argparse
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import bench_environment, fresh_postgres_database  # noqa: E402

PAPER_LINK = re.compile(rb"https://arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5})")
TEXT_PART_END = b"Content-Type: text/html"


# --- the SMTP sink, in a process of its own -----------------------------------------------------


def papers_shown(data: bytes) -> list[str]:
    """The arXiv ids a digest's text part links to, in order, each once."""
    text = data.split(TEXT_PART_END, 1)[0]
    return list(dict.fromkeys(match.decode() for match in PAPER_LINK.findall(text)))


def run_sink(port_out, log_path: str) -> None:
    """aiosmtpd, offering PIPELINING; one line per accepted digest: recipient, then its papers."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open until the process is killed

    class Recording:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            responses.insert(-1, "250-PIPELINING")
            return responses

        async def handle_DATA(self, server, session, envelope):
            shown = ",".join(papers_shown(envelope.content))
            for recipient in envelope.rcpt_tos:
                log.write(f"{recipient.lower()}\t{shown}\n")
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Recording(), hostname="sink"), "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


class Sink:
    """The recording sink's process; `digests(since)` reads what it received after line `since`."""

    def __init__(self, folder: Path):
        self.log = folder / "sink.log"
        ctx = multiprocessing.get_context("fork")
        port_in, port_out = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=run_sink, args=(port_out, str(self.log)), daemon=True)
        self.process.start()
        self.port = port_in.recv()

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def digests(self, since: int = 0) -> dict[str, list[str]]:
        """Recipient: the papers of the digest they received (a second digest is an error)."""
        received: dict[str, list[str]] = {}
        for line in self.lines()[since:]:
            recipient, _, shown = line.partition("\t")
            if recipient in received:
                raise AssertionError(f"{recipient} received two digests")
            received[recipient] = shown.split(",") if shown else []
        return received

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def compare(through_workers: dict[str, list[str]], in_process: dict[str, list[str]]) -> list[str]:
    """What differs between two runs' digests, one line per recipient (empty: identical)."""
    differences = []
    for recipient in sorted(set(through_workers) | set(in_process)):
        a, b = through_workers.get(recipient), in_process.get(recipient)
        if a != b:
            differences.append(f"{recipient}: through workers {a}, in process {b}")
    return differences


# --- Celery processes ---------------------------------------------------------------------------


class Celery:
    """`celery -A config <command>` subprocesses, each in a session of its own."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *arguments: str, env: dict[str, str] | None = None) -> None:
        celery = str(Path(sys.executable).with_name("celery"))
        self.processes[name] = subprocess.Popen(
            [celery, "-A", "config", *arguments],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def worker(self, queue: str, concurrency: int) -> None:
        self.start(
            queue,
            "worker",
            "-Q",
            queue,
            f"--concurrency={concurrency}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"{queue}-{time.time_ns()}@%h",
        )

    def beat(self, folder: Path, *, match_minutes: float, dispatch_minutes: float) -> None:
        schedule = folder / f"beat-{time.time_ns()}"
        every = {"MATCH_EVERY_MINUTES": str(match_minutes), "DISPATCH_EVERY_MINUTES": str(dispatch_minutes)}
        self.start("beat", "beat", "--loglevel=WARNING", f"--schedule={schedule}", env=every)

    def wait_for_workers(self, count: int, timeout: float) -> None:
        """Until `count` workers answer a ping through the broker (they have started)."""
        from config.celery import app

        def answered() -> bool:
            return len(app.control.ping(timeout=0.5)) >= count

        wait_until(answered, timeout, f"{count} workers to answer", self)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def check_alive(self) -> None:
        dead = [name for name, process in self.processes.items() if process.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead} exited; log:\n{self.log.read_text()[-4000:]}")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, celery: Celery | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if celery is not None:
            celery.check_alive()
        if predicate():
            return
        time.sleep(0.2)
    log = celery.log.read_text()[-4000:] if celery else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{log}")


# --- the two paths ------------------------------------------------------------------------------


@dataclass
class Timings:
    match_seconds: float = 0.0  # wall time of the phase, from this process
    send_seconds: float = 0.0
    candidates: int = 0
    sent: int = 0
    match_run_seconds: float = 0.0  # from the rows: the run's start to its last chunk
    send_run_seconds: float = 0.0  # the first delivery created to the last digest accepted
    match_started: datetime | None = None
    match_runs: int = 0  # beat ticks while a run is under way start none: one run over the papers

    def read_rows(self) -> None:
        from django.db.models import Count, Max, Min

        from digest.models import Candidate, Delivery, MatchRun

        run = MatchRun.objects.aggregate(started=Min("started_at"), finished=Max("finished_at"), count=Count("id"))
        self.match_runs = run["count"]
        self.match_started = run["started"]
        if run["finished"]:
            self.match_run_seconds = (run["finished"] - run["started"]).total_seconds()
        sent = Delivery.objects.aggregate(first=Min("created_at"), last=Max("sent_at"))
        if sent["last"]:
            self.send_run_seconds = (sent["last"] - sent["first"]).total_seconds()
        self.candidates = Candidate.objects.count()
        self.sent = Delivery.objects.filter(status=Delivery.Status.SENT).count()


def make_due() -> None:
    from django.utils import timezone

    from subscribers.models import Subscriber

    Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).update(
        next_delivery_at=timezone.now() - timedelta(minutes=1)
    )


def not_due() -> None:
    from django.utils import timezone

    from subscribers.models import Subscriber

    Subscriber.objects.update(next_delivery_at=timezone.now() + timedelta(days=30))


def all_sent_or_skipped() -> bool:
    from digest.models import Delivery
    from subscribers.models import Subscriber

    active = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count()
    deliveries = Delivery.objects.count()
    waiting = Delivery.objects.filter(status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]).exists()
    return deliveries >= active and not waiting


def run_through_workers(celery: Celery, folder: Path, *, concurrency: int, tick: float, timeout: float) -> Timings:
    """Match and send with a matching worker, a sending worker and beat, through the broker."""
    from digest.models import MatchRun

    timings = Timings()
    minutes = tick / 60
    never = 24 * 60.0
    not_due()
    celery.worker("matching", concurrency)
    celery.worker("sending", concurrency)
    celery.wait_for_workers(2, timeout=120)
    started = time.perf_counter()
    celery.beat(folder, match_minutes=minutes, dispatch_minutes=never)
    wait_until(MatchRun.objects.exists, timeout, "beat to start a match run", celery)
    celery.stop("beat")
    wait_until(lambda: not MatchRun.objects.filter(finished_at__isnull=True).exists(), timeout, "the match run", celery)
    timings.match_seconds = time.perf_counter() - started

    make_due()
    started = time.perf_counter()
    celery.beat(folder, match_minutes=never, dispatch_minutes=minutes)
    wait_until(all_sent_or_skipped, timeout, "every digest sent", celery)
    timings.send_seconds = time.perf_counter() - started
    celery.stop_all()
    timings.read_rows()
    return timings


def forget_matches_and_digests() -> None:
    """Delete what a run made (candidates, deliveries, match runs and their chunk markers) and make
    everyone due again."""
    from django.db import connection

    from digest.matching.runs import clear_index_cache
    from digest.models import Candidate, Delivery, MatchChunk, MatchRun, SendTally

    # The markers before their runs: a plain DELETE does not cascade as Django's delete() does.
    tables = [model._meta.db_table for model in (Candidate, Delivery, MatchChunk, MatchRun, SendTally)]
    with connection.cursor() as cursor:
        for table in tables:
            # S608: only the models' own table names are formatted in.
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")  # noqa: S608
    if connection.vendor == "postgresql":
        # Deleting leaves dead rows behind, and statistics of tables that were full.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(connection.ops.quote_name(t) for t in tables)}")
    clear_index_cache()
    make_due()


def run_in_process(ranked_at: datetime | None = None) -> Timings:
    """The same work, in this process, without a broker: the functions the tasks call. With
    `ranked_at`, the match run starts then (the clock set back), and so ranks as of then."""
    import contextlib

    import time_machine
    from django.conf import settings

    from digest.chunks import chunked
    from digest.delivery.dispatch import dispatch_due
    from digest.delivery.sending import send_delivery_chunk
    from digest.matching.runs import match_chunk, start_match_run

    timings = Timings()
    started = time.perf_counter()
    with time_machine.travel(ranked_at, tick=False) if ranked_at else contextlib.nullcontext():
        plan = start_match_run()
    for chunk in plan.chunks if plan else []:
        match_chunk(plan.run_id, chunk)
    timings.match_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for chunk in chunked(dispatch_due(queue=False), settings.DIGEST_CHUNK_SIZE):
        send_delivery_chunk(chunk)
    timings.send_seconds = time.perf_counter() - started
    timings.read_rows()
    timings.match_run_seconds = timings.match_seconds  # the run's start was set back: the rows cannot say
    return timings


@dataclass
class Outcome:
    through_workers: Timings
    in_process: Timings
    digests: int
    papers: int  # shown in all the digests of one path
    differences: list[str]
    candidates: int = 0
    candidates_differing: int = 0  # (subscriber, paper) stored by one path only, or with another score
    largest_score_gap: float = 0.0


def run_both(sink: Sink, celery: Celery, folder: Path, *, concurrency: int, tick: float, timeout: float) -> Outcome:
    """Both paths over the subscribers and papers already stored; the digests compared."""
    before = len(sink.lines())
    workers = run_through_workers(celery, folder, concurrency=concurrency, tick=tick, timeout=timeout)
    through_workers = sink.digests(before)
    matched_by_workers = candidate_scores()
    before = len(sink.lines())
    forget_matches_and_digests()
    here = run_in_process(ranked_at=workers.match_started)
    in_process = sink.digests(before)
    assert len(through_workers) == workers.sent and len(in_process) == here.sent, (workers, here)
    papers = sum(len(shown) for shown in in_process.values())
    assert papers or not in_process, "no paper found in any digest: has the email's text part changed?"
    matched_here = candidate_scores()
    pairs = matched_by_workers.keys() | matched_here.keys()
    differing = [pair for pair in pairs if matched_by_workers.get(pair) != matched_here.get(pair)]
    gaps = [abs(matched_by_workers.get(pair, 0.0) - matched_here.get(pair, 0.0)) for pair in differing]
    return Outcome(
        workers,
        here,
        len(through_workers),
        papers,
        compare(through_workers, in_process),
        candidates=len(matched_here),
        candidates_differing=len(differing),
        largest_score_gap=max(gaps, default=0.0),
    )


def candidate_scores() -> dict[tuple[int, int], float]:
    """(subscriber, paper): score, of every candidate stored."""
    from digest.models import Candidate

    rows = Candidate.objects.values_list("subscriber_id", "paper_id", "score").iterator(chunk_size=20000)
    return {(subscriber, paper): score for subscriber, paper, score in rows}


def environment(database_url: str, redis_url: str, sink_port: int, folder: Path) -> dict[str, str]:
    """What the workers, beat and this process run with."""
    return bench_environment(
        database_url, folder=str(folder), smtp_port=sink_port, REDIS_URL=redis_url, CELERY_TASK_ALWAYS_EAGER="0"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes of each worker")
    parser.add_argument("--tick", type=float, default=3.0, help="seconds between two beats of each schedule")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds each phase may take")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/paperboy_scaleout",
        help="a PostgreSQL bench database to drop and create, or sqlite:////path/file.sqlite3",
    )
    args = parser.parse_args()

    from tests.support.servers import ThrowawayRedis

    folder = Path(tempfile.mkdtemp(prefix="paperboy-scaleout-"))
    if args.database_url.startswith("postgres"):
        fresh_postgres_database(args.database_url)
    sink = Sink(folder)
    redis = ThrowawayRedis().start()
    env = environment(args.database_url, redis.url(), sink.port, folder)
    os.environ.update(env)
    celery = Celery({**os.environ, **env}, folder / "celery.log")
    try:
        outcome = bench(args, sink, celery, folder)
    finally:
        celery.stop_all()
        sink.stop()
        redis.stop()
    report(args, outcome)


def bench(args, sink: Sink, celery: Celery, folder: Path) -> Outcome:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from bench.digests import populate, warm_up

    call_command("migrate", verbosity=0)
    warm_up()
    populate(args)
    connections.close_all()
    return run_both(sink, celery, folder, concurrency=args.concurrency, tick=args.tick, timeout=args.timeout)


def report(args, outcome: Outcome) -> None:
    for name, timings in (("through workers", outcome.through_workers), ("in process", outcome.in_process)):
        print(
            f"{name}: match {timings.candidates} candidates in {timings.match_run_seconds:.1f} s "
            f"({timings.match_seconds:.1f} s wall); dispatch and send {timings.sent} digests in "
            f"{timings.send_run_seconds:.1f} s ({timings.send_seconds:.1f} s wall), "
            f"{timings.sent / max(timings.send_run_seconds, 1e-9):.0f}/s"
        )
    same = outcome.digests - len(outcome.differences)
    print(
        f"digests compared per subscriber, papers in order: {same} of {outcome.digests} identical "
        f"({outcome.papers / max(outcome.digests, 1):.1f} papers per digest)"
    )
    print(
        f"candidates compared (subscriber, paper, score): {outcome.candidates - outcome.candidates_differing} "
        f"of {outcome.candidates} identical (largest score difference {outcome.largest_score_gap:.4f})"
    )
    for line in outcome.differences[:10]:
        print("  " + line)
    workers, here = outcome.through_workers, outcome.in_process
    print(
        f"subscribers={args.subscribers} digests={outcome.digests} differing={len(outcome.differences)} "
        f"candidates_differing={outcome.candidates_differing} "
        f"workers_match_s={workers.match_run_seconds:.1f} workers_send_s={workers.send_run_seconds:.1f} "
        f"in_process_match_s={here.match_run_seconds:.1f} in_process_send_s={here.send_run_seconds:.1f}"
    )
    if outcome.differences:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Where one sending worker's time goes, per digest: its own CPU, its database backend's CPU, and
the statements, transactions and row writes it makes.

    .venv/bin/python bench/send_profile.py --database-url postgres://postgres@127.0.0.1:5432/paperboy_bench \
        [--digests 2000]

Reuses the database of a previous `bench/digests.py --database-url ...` run (its subscribers,
papers and matches): forgets its deliveries as `--reuse` does, dispatches, then sends `--digests`
digests in this one process, chunk by chunk (`send_delivery_chunk`), into the aiosmtpd sink.
CPU times are the process's own (`getrusage`) and, on PostgreSQL, its backend's (from
/proc/<pid>/stat: the server runs on this machine), so other programs sharing the cores do not
count; statements are counted by Django's execute wrapper, transactions and row writes by the
database's own statistics (pg_stat_database of the bench database, which nothing else uses). On
SQLite (`--database-url sqlite:///path`) the database's work is in the process. The last line is
machine-readable.
"""

import argparse
import cProfile
import multiprocessing
import os
import pstats
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.digests import PythonSink, settled  # noqa: E402
from bench.environment import bench_environment  # noqa: E402


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_cpu_seconds(pid: int | None) -> float:
    """The time a process has run on a CPU, in nanoseconds' precision (/proc/<pid>/schedstat)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0]) / 1e9


def statement_kind(sql: str) -> str:
    """A statement's shape, for counting: its verb and first table."""
    words = sql.split(None, 1)
    verb = words[0].upper() if words else "?"
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else ''}".strip()


class StatementTimes:
    """Django execute wrapper (`connection.execute_wrapper(times)`): per statement kind, how many,
    the worker's wall time waiting for them, and the backend's CPU in them."""

    def __init__(self, backend: int | None) -> None:
        self.backend = backend
        self.count: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.served: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        started, serving = time.perf_counter(), backend_cpu_seconds(self.backend)
        try:
            return execute(sql, params, many, context)
        finally:
            kind = statement_kind(sql)
            self.count[kind] += 1
            self.seconds[kind] += time.perf_counter() - started
            self.served[kind] += backend_cpu_seconds(self.backend) - serving

    def total(self) -> int:
        return sum(self.count.values())

    def print_by_kind(self, chunks: int, per: float) -> None:
        """Each kind: per chunk, then the wall time and backend CPU in ms per unit (`per` = 1000 / units)."""
        for kind, number in self.count.most_common():
            waited, served = self.seconds[kind] * per, self.served[kind] * per
            print(f"  {number / chunks:6.1f}  {waited:6.3f} ms  {served:6.3f} ms  {kind}")


def print_profile(profiler: cProfile.Profile | None, lines: int) -> None:
    """The costliest functions of a cProfile run, by own time, then by cumulative time."""
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(lines)
        stats.sort_stats("cumulative").print_stats(lines)


def database_counters(connection) -> dict[str, int]:
    """The bench database's commits, row changes and shared-buffer hits and reads (pg_stat_database)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched, blks_hit, blks_read "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        row = cursor.fetchone()
    names = ("commits", "inserted", "updated", "deleted", "fetched", "hit", "read")
    return dict(zip(names, row, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="the database of a previous bench/digests.py run")
    parser.add_argument("--digests", type=int, default=2000, help="digests to send (whole chunks)")
    parser.add_argument(
        "--worker-nice", type=int, default=10, help="this process's niceness once the sink runs, as bench/digests.py"
    )
    parser.add_argument("--cprofile", type=int, default=0, help="print this many of the worker's costliest functions")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="paperboy-profile-")
    sink = PythonSink(multiprocessing.get_context("fork"), pipelining=True)
    os.nice(args.worker_nice)
    os.environ.update(bench_environment(args.database_url, folder=folder, smtp_port=sink.port))
    os.environ.pop("REDIS_URL", None)
    try:
        profile(args, sink)
    finally:
        sink.stop()


def profile(args, sink) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bench.digests import unsend_everything, warm_up
    from digest.chunks import chunked
    from digest.delivery.dispatch import dispatch_due
    from digest.delivery.sending import send_delivery_chunk

    call_command("migrate", verbosity=0)
    warm_up()
    unsend_everything()
    ids = dispatch_due(queue=False)
    chunks = list(chunked(ids, settings.DIGEST_CHUNK_SIZE))[: max(1, args.digests // settings.DIGEST_CHUNK_SIZE)]
    if len(chunks) < 2:
        raise SystemExit(
            f"{len(chunks)} chunk(s) of {settings.DIGEST_CHUNK_SIZE} to send ({len(ids)} digests due, --digests "
            f"{args.digests}): one warms up and at least one more is measured; ask for more --digests, or fill "
            "the database with more subscribers"
        )
    on_postgres = connection.vendor == "postgresql"
    send_delivery_chunk(chunks.pop(0))  # warm: the card cache, the connection, prepared plans

    backend = None
    if on_postgres:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        counters_before, backend_before = database_counters(connection), backend_cpu_seconds(backend)

    statements = StatementTimes(backend)
    received_before = sink.value
    cpu_before, wall_before = process_cpu_seconds(), time.perf_counter()
    sent = 0
    profiler = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU time, not wall
    with connection.execute_wrapper(statements):
        for chunk in chunks:
            if profiler:
                profiler.enable()
            sent += send_delivery_chunk(chunk).sent
            if profiler:
                profiler.disable()
    cpu, wall = process_cpu_seconds() - cpu_before, time.perf_counter() - wall_before
    assert settled(sink, received_before + sent) - received_before == sent
    per = 1000 / max(sent, 1)
    database_ms = 0.0
    print(f"{sent} digests in {len(chunks)} chunks, {wall:.1f} s wall ({settings.DATABASES['default']['ENGINE']})")
    print(f"worker CPU {cpu * per:.2f} ms per digest")
    if on_postgres:
        database_ms = (backend_cpu_seconds(backend) - backend_before) * per
        counters = database_counters(connection)
        changes = {name: counters[name] - counters_before[name] for name in counters}
        print(f"database backend CPU {database_ms:.2f} ms per digest")
        print(
            "per chunk: {:.1f} commits; per digest: {:.1f} rows inserted, {:.1f} updated, {:.1f} fetched".format(
                changes["commits"] / len(chunks),
                changes["inserted"] * per / 1000,
                changes["updated"] * per / 1000,
                changes["fetched"] * per / 1000,
            )
        )
    print(
        f"per chunk: {statements.total() / len(chunks):.1f} statements; by kind: per chunk, then per digest "
        "the worker's wall time waiting for them and the backend's CPU in them (the rest of its CPU: commits)"
    )
    statements.print_by_kind(len(chunks), per)
    print_profile(profiler, args.cprofile)
    print(
        f"digests={sent} worker_cpu_ms={cpu * per:.2f} database_cpu_ms={database_ms:.2f} "
        f"statements_per_chunk={statements.total() / len(chunks):.1f}"
    )


if __name__ == "__main__":
    main()

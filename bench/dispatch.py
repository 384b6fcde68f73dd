"""The dispatcher at scale: N due subscribers turned into Delivery rows by one `dispatch_due`.

    .venv/bin/python bench/dispatch.py --subscribers 100000 \
        --database-url postgres://postgres@127.0.0.1:5432/paperboy_bench_dispatch [--reuse] [--explain]

Drops and creates the database (PostgreSQL; SQLite in a temporary folder without a URL), stores
`--subscribers` active subscribers whose slot has come, with bench/matching.py's generated
preferences (the rows are as wide as a real run's; the dispatcher needs no papers or matches), and
runs `dispatch_due(now, queue=False)` once. `--reuse` keeps the subscribers of a previous run of
the same size instead: its deliveries are deleted, every slot is put back, and the two tables are
rewritten (VACUUM FULL) so that they start as compact as freshly stored ones.

It prints the wall time, the process's CPU and its database backend's (/proc/<pid>/schedstat: the
server runs on this machine, so other programs sharing the cores do not count), the backend's
bytes written (/proc/<pid>/io: WAL and the dirty pages it had to evict itself), and the bench
database's shared-buffer hits and reads (pg_stat_database, which nothing else uses); then the same
per tenth of the batches, by statement kind, to show which statement grows as the run goes on.
`--explain` logs the plans of statements over 50 ms with their buffers and WAL through auto_explain
(the server's log, /var/log/postgresql/postgresql-15-main.log). The last line is machine-readable.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import bench_environment, fresh_postgres_database  # noqa: E402
from bench.send_profile import (  # noqa: E402
    backend_cpu_seconds,
    database_counters,
    process_cpu_seconds,
    statement_kind,
)

SEGMENTS = 10
EXPLAIN_OPTIONS = (
    "-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=50 "
    "-c auto_explain.log_analyze=on -c auto_explain.log_buffers=on -c auto_explain.log_wal=on"
)


def backend_written_bytes(pid: int | None) -> int:
    """Bytes the backend asked the kernel to write (/proc/<pid>/io wchar): its WAL, and the dirty
    shared buffers it evicted itself because nobody had written them yet."""
    if pid is None:
        return 0
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


class BatchTimes:
    """Django execute wrapper: per statement kind and tenth of the run, the wall time, the backend's
    CPU and bytes written; the time between statements (the commit, Python) goes to "between"."""

    def __init__(self, backend: int | None, batches: int) -> None:
        self.backend = backend
        self.batches = max(batches, 1)
        self.done = 0  # batches whose Delivery INSERT has run
        self.wall: list[Counter[str]] = [Counter() for _ in range(SEGMENTS)]
        self.cpu: list[Counter[str]] = [Counter() for _ in range(SEGMENTS)]
        self.written: list[Counter[str]] = [Counter() for _ in range(SEGMENTS)]
        self.last = self._now()

    def _now(self) -> tuple[float, float, int]:
        return time.perf_counter(), backend_cpu_seconds(self.backend), backend_written_bytes(self.backend)

    def _add(self, kind: str, since: tuple[float, float, int], until: tuple[float, float, int]) -> None:
        segment = min(self.done * SEGMENTS // self.batches, SEGMENTS - 1)
        self.wall[segment][kind] += until[0] - since[0]
        self.cpu[segment][kind] += until[1] - since[1]
        self.written[segment][kind] += until[2] - since[2]

    def __call__(self, execute, sql, params, many, context):
        started = self._now()
        self._add("between", self.last, started)
        try:
            return execute(sql, params, many, context)
        finally:
            self.last = self._now()
            kind = statement_kind(sql)
            self._add(kind, started, self.last)
            if kind == "INSERT digest_delivery":
                self.done += 1

    def finish(self) -> None:
        self._add("between", self.last, self._now())

    def print(self, per_segment: list[int]) -> None:
        kinds = sorted({kind for counter in self.wall for kind in counter}, key=lambda k: -sum(c[k] for c in self.cpu))
        print("per tenth of the batches, per delivery: wall ms / backend CPU ms / backend kB written")
        print(f"{'tenth':>5} {'total':>20} " + " ".join(f"{kind[:24]:>24}" for kind in kinds))
        for segment in range(SEGMENTS):
            count = per_segment[segment]
            if not count:
                continue

            def cell(wall: float, cpu: float, written: float, width: int, count: int = count) -> str:
                return f"{wall * 1000 / count:.3f}/{cpu * 1000 / count:.3f}/{written / 1024 / count:.1f}".rjust(width)

            wall, cpu, written = self.wall[segment], self.cpu[segment], self.written[segment]
            total = cell(sum(wall.values()), sum(cpu.values()), sum(written.values()), 20)
            print(
                f"{segment + 1:>5} {total} "
                + " ".join(cell(wall[kind], cpu[kind], written[kind], 24) for kind in kinds)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--database-url", default="", help="a PostgreSQL bench database to drop and create")
    parser.add_argument("--reuse", action="store_true", help="keep the subscribers of a previous run of this size")
    parser.add_argument("--explain", action="store_true", help="log plans of statements over 50 ms (auto_explain)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="paperboy-dispatch-")
    on_postgres = args.database_url.startswith("postgres")
    if on_postgres and not args.reuse:
        fresh_postgres_database(args.database_url)
    os.environ.update(bench_environment(args.database_url, folder=folder))
    os.environ.pop("REDIS_URL", None)
    if args.explain:
        os.environ["PGOPTIONS"] = (os.environ.get("PGOPTIONS", "") + " " + EXPLAIN_OPTIONS).strip()
    run(args)


def populate(count: int, seed: int, due) -> None:
    """`count` active, due subscribers with generated preferences, 10,000 to a statement."""
    from bench.matching import Generator
    from digest.plain_sql import insert_columns
    from subscribers.models import Subscriber

    generator = Generator(seed)
    names = ("email", "public_id", "status", "next_delivery_at", "keywords", "interests", "authors", "categories")
    names += ("category_mode",)
    for first in range(0, count, 10_000):
        columns: dict[str, list] = {name: [] for name in names}
        for number in range(first, min(first + 10_000, count)):
            prefs = generator.preferences()
            columns["email"].append(f"reader{number}@example.org")
            columns["public_id"].append(uuid.uuid4())
            columns["status"].append(Subscriber.Status.ACTIVE)
            columns["next_delivery_at"].append(due)
            columns["keywords"].append(prefs["keywords"])
            columns["interests"].append(prefs.get("interests", ""))
            columns["authors"].append(prefs.get("authors", []))
            columns["categories"].append(prefs.get("categories", []))
            columns["category_mode"].append(prefs.get("category_mode", "boost"))
        insert_columns(Subscriber, columns)


def reset(count: int, due) -> None:
    """--reuse: forget the deliveries, put every slot back, and rewrite both tables compactly."""
    from django.db import connection

    from digest.models import Delivery
    from subscribers.models import Subscriber

    stored = Subscriber.objects.count()
    if stored != count:
        raise SystemExit(f"--reuse: the database holds {stored} subscribers, not {count}")
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Delivery._meta.db_table}")
        cursor.execute(f"UPDATE {Subscriber._meta.db_table} SET next_delivery_at = %s", [due])  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute(f"VACUUM FULL {Subscriber._meta.db_table}")
            cursor.execute(f"VACUUM FULL {Delivery._meta.db_table}")


def table_bytes(connection) -> dict[str, int]:
    """The subscriber and delivery tables' sizes, with their indexes and TOAST."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size('subscribers_subscriber'), pg_total_relation_size('digest_delivery')"
        )
        row = cursor.fetchone()
    return dict(zip(("subscriber_bytes", "delivery_bytes"), row, strict=True))


def run(args) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from digest.chunks import chunked
    from digest.delivery.dispatch import DISPATCH_BATCH_SIZE, dispatch_due, due_subscribers

    call_command("migrate", verbosity=0)
    now = timezone.now()
    due = now - timedelta(minutes=1)
    started = time.perf_counter()
    if args.reuse:
        reset(args.subscribers, due)
    else:
        populate(args.subscribers, args.seed, due)
    print(f"{args.subscribers} due subscribers ready in {time.perf_counter() - started:.1f} s", flush=True)

    on_postgres = connection.vendor == "postgresql"
    backend = None
    if on_postgres:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
            cursor.execute("CHECKPOINT")  # the stored rows' pages start clean, whatever the size
        before = database_counters(connection) | table_bytes(connection)
    due_ids = list(due_subscribers(now).values_list("id", flat=True))
    batch_sizes = [len(batch) for batch in chunked(due_ids, DISPATCH_BATCH_SIZE)]
    per_segment = [0] * SEGMENTS
    for number, size in enumerate(batch_sizes):
        per_segment[min(number * SEGMENTS // max(len(batch_sizes), 1), SEGMENTS - 1)] += size

    times = BatchTimes(backend, len(batch_sizes))
    cpu_before, backend_before, written_before = (
        process_cpu_seconds(),
        backend_cpu_seconds(backend),
        backend_written_bytes(backend),
    )
    started = time.perf_counter()
    with connection.execute_wrapper(times):
        ids = dispatch_due(now, queue=False)
        times.finish()
    wall = time.perf_counter() - started
    cpu = process_cpu_seconds() - cpu_before
    database_cpu = backend_cpu_seconds(backend) - backend_before
    written = backend_written_bytes(backend) - written_before
    count = len(ids)
    if count != args.subscribers:
        raise SystemExit(f"{count} deliveries for {args.subscribers} due subscribers")
    per = 1000 / max(count, 1)
    print(f"dispatched {count} deliveries in {len(batch_sizes)} batches, {wall:.1f} s wall ({connection.vendor})")
    print(
        f"per delivery: {wall * per:.3f} ms wall, process CPU {cpu * per:.3f} ms, "
        f"backend CPU {database_cpu * per:.3f} ms, backend wrote {written / 1024 / count:.1f} kB"
    )
    changes = {}
    if on_postgres:
        after = database_counters(connection) | table_bytes(connection)
        changes = {name: after[name] - before[name] for name in ("hit", "read", "commits", "inserted", "updated")}
        print(
            f"shared buffers per delivery: {changes['hit'] / count:.1f} hits, {changes['read'] / count:.2f} reads; "
            f"{changes['commits']} commits, {changes['inserted']} rows inserted, {changes['updated']} updated"
        )
        megabytes = {name: f"{after[name] / 2**20:.0f} MB" for name in ("subscriber_bytes", "delivery_bytes")}
        print(
            f"after: subscribers {megabytes['subscriber_bytes']} (before {before['subscriber_bytes'] / 2**20:.0f} MB), "
            f"deliveries {megabytes['delivery_bytes']}, with indexes"
        )
    times.print(per_segment)
    print(
        f"subscribers={args.subscribers} deliveries={count} wall_s={wall:.1f} ms_per_delivery={wall * per:.3f} "
        f"process_cpu_ms={cpu * per:.3f} backend_cpu_ms={database_cpu * per:.3f} "
        f"backend_written_kb={written / 1024 / count:.1f} "
        f"hits_per_delivery={changes.get('hit', 0) / count:.1f} reads_per_delivery={changes.get('read', 0) / count:.2f}"
    )


if __name__ == "__main__":
    main()

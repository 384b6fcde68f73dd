"""Bounded storage: N simulated days of ingest, matching, sending and the daily purge.

    .venv/bin/python bench/retention.py --database-url postgres://postgres@127.0.0.1:5432/paperboy_retention
    .venv/bin/python bench/retention.py --subscribers 100000 --days 30 --retention-days 7 --database-url ...

Each simulated day (the clock moved with time_machine, so every timestamp is the simulated one):
`--papers-per-day` new papers arrive (bench/matching.py's generator), a match run matches them
for every subscriber (`start_match_run`, `match_chunk`), the daily digests are dispatched and sent
into postfix's smtp-sink (or aiosmtpd: `--sink python`) with `send_delivery_chunk`, and the
retention purge runs (`purge_old_rows`, as the beat task does daily). Matching and sending run in
`--workers` forked processes (2, as the shipped workers; 1 runs them in this process). On PostgreSQL each day ends
with a VACUUM of the purged tables, standing in for autovacuum (off on this machine), so that the
space of deleted rows is reused as in production.

It prints rows and bytes (table, indexes and TOAST) of the candidate, delivery, match run, paper
and sentence-vector tables at day 1, 10 and the last day (and every `--every` days): with a
retention shorter than the run, the first three stop growing once the retention has passed, and so
do the vectors (a day's papers are matched on their day only); papers (not purged) grow by their
daily count. Bytes need PostgreSQL; SQLite prints rows only. The vectors stored are pseudo-random
ones (bench/matching.py, `store_pseudo_vectors`), stored as ingestion stores the real ones.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.digests import start_sink  # noqa: E402
from bench.environment import bench_environment, fresh_postgres_database  # noqa: E402

TABLES = ("digest_candidate", "digest_delivery", "digest_matchrun", "digest_paper", "digest_textvector")
START = datetime(2026, 11, 1, 6, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--papers-per-day", type=int, default=300)
    parser.add_argument("--retention-days", type=int, default=7, help="RETENTION_DAYS for the run (default 7)")
    parser.add_argument("--every", type=int, default=5, help="also report every this many days")
    parser.add_argument("--sink", choices=("c", "python"), default="c")
    parser.add_argument("--database-url", default="", help="a PostgreSQL bench database to drop and create")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=2, help="processes that match and send, as Celery workers would (default 2)"
    )
    args = parser.parse_args()

    import multiprocessing

    folder = tempfile.mkdtemp(prefix="paperboy-retention-")
    sink = start_sink(args.sink, multiprocessing.get_context("fork"), True, folder)
    if args.database_url.startswith("postgres"):
        fresh_postgres_database(args.database_url)
    os.environ.update(
        bench_environment(
            args.database_url, folder=folder, smtp_port=sink.port, RETENTION_DAYS=str(args.retention_days)
        )
    )
    os.environ.pop("REDIS_URL", None)
    try:
        run(args, sink)
    finally:
        sink.stop()


def run(args, sink) -> None:
    import django

    django.setup()
    import time_machine
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench.digests import warm_up

    warm_up()
    print(
        f"{args.subscribers} subscribers, {args.papers_per_day} papers a day, {args.days} days, "
        f"RETENTION_DAYS={args.retention_days}, sink {sink.name}",
        flush=True,
    )
    generator = populate(args)
    header = f"{'day':>4} " + " ".join(f"{t.removeprefix('digest_'):>22}" for t in TABLES) + "   sent  day took"
    print(header)
    sent_total = 0
    for day in range(1, args.days + 1):
        started = time.perf_counter()
        morning = START + timedelta(days=day - 1)
        with time_machine.travel(morning, tick=True):
            ingest(generator, args, day)
        with time_machine.travel(morning + timedelta(hours=1), tick=True):
            match_all(args.workers)
        with time_machine.travel(morning + timedelta(hours=2, minutes=5), tick=True):
            sent = send_due(args.workers)
            sent_total += sent
            purge()
        if day in (1, 10, args.days) or day % args.every == 0:
            print(
                f"{day:>4} "
                + " ".join(f"{size(t):>22}" for t in TABLES)
                + f" {sent:>6} {time.perf_counter() - started:7.1f} s",
                flush=True,
            )
    print("cells: rows / bytes (table + indexes + TOAST)")
    print(
        f"subscribers={args.subscribers} days={args.days} retention_days={args.retention_days} sent={sent_total} "
        + " ".join(f"{t.removeprefix('digest_')}={size(t).replace(' ', '')}" for t in TABLES)
    )


def populate(args):
    from bench.matching import Generator, store_pseudo_vectors
    from subscribers.models import Subscriber

    generator = Generator(args.seed)
    rows = []
    for number in range(args.subscribers):
        prefs = generator.preferences()
        rows.append(
            Subscriber(
                email=f"reader{number}@example.org",
                status=Subscriber.Status.ACTIVE,
                keywords=prefs["keywords"],
                interests=prefs.get("interests", ""),
                authors=prefs.get("authors", []),
                categories=prefs.get("categories", []),
                category_mode=prefs.get("category_mode", "boost"),
                delivery_hour=8,
                next_delivery_at=START + timedelta(hours=2),
            )
        )
    Subscriber.objects.bulk_create(rows, batch_size=2000)
    # As the saved interests would have (and ingest() for the papers): runs read vectors, not encode them.
    store_pseudo_vectors([], [row.interests for row in rows if row.interests])
    return generator


def ingest(generator, args, day: int) -> None:
    from bench.matching import store_pseudo_vectors
    from digest.models import Paper

    papers = []
    for n in range(args.papers_per_day):
        number = (day - 1) * args.papers_per_day + n + 1
        doc = generator.paper(number)
        arxiv_id = f"26{day:02d}.{n:05d}"
        papers.append(
            Paper(
                arxiv_id=arxiv_id,
                guid=arxiv_id,
                title=doc.title,
                abstract=doc.abstract,
                authors=list(doc.authors),
                categories=list(doc.categories),
                primary_category=doc.categories[0],
                published=START + timedelta(days=day - 1),
                url=f"https://arxiv.org/abs/{arxiv_id}",
                upvotes=doc.upvotes,
            )
        )
    Paper.objects.bulk_create(papers, batch_size=1000)
    store_pseudo_vectors([(paper.title, paper.abstract) for paper in papers], [])


def in_workers(workers: int, function, items: list) -> list:
    """`function` over `items` in `workers` forked processes (each opens its own connection and
    inherits the simulated clock), or in this process with one worker."""
    if workers <= 1:
        return [function(item) for item in items]
    import multiprocessing

    from django.db import connections

    connections.close_all()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(function, items, chunksize=1)


def match_all(workers: int) -> None:
    from bench.digests import _match
    from digest.matching.runs import start_match_run

    plan = start_match_run()
    if plan is not None:
        in_workers(workers, _match, [(plan.run_id, chunk) for chunk in plan.chunks])


def send_due(workers: int) -> int:
    from django.conf import settings
    from django.utils import timezone

    from bench.digests import _send
    from digest.chunks import chunked
    from digest.delivery.dispatch import dispatch_due

    ids = dispatch_due(timezone.now(), queue=False)
    return sum(outcome[0] for outcome in in_workers(workers, _send, list(chunked(ids, settings.DIGEST_CHUNK_SIZE))))


def purge() -> None:
    from django.db import connection

    from digest.delivery.retention import purge_old_rows

    purge_old_rows()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) digest_candidate, digest_delivery, digest_matchrun")


def size(table: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - a fixed table name
        rows = cursor.fetchone()[0]
        if connection.vendor != "postgresql":
            return f"{rows:,}"
        cursor.execute("SELECT pg_total_relation_size(%s)", [table])
        total = cursor.fetchone()[0]
    return f"{rows:,} / {total / 2**20:,.1f} MB"


if __name__ == "__main__":
    main()

"""What the send-chunk figures of /metrics cost a scrape at a million digests a day.

    .venv/bin/python bench/send_tally_scrape.py --database-url postgres://postgres@127.0.0.1:5432/paperboy_tallybench

Migrates the database it is given (use a scratch one: it replaces its send tallies), writes a
full day of per-minute SendTally rows as a million digests a day in chunks of DIGEST_CHUNK_SIZE
leave them (one row per minute, whatever the volume), then times the query a scrape makes over
them (`digest.ops.metrics.send_chunks`). Last line machine-readable.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import bench_environment  # noqa: E402

MINUTES = 24 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--digests-per-day", type=int, default=1_000_000)
    parser.add_argument("--times", type=int, default=101)
    args = parser.parse_args()
    os.environ.update(bench_environment(args.database_url, CELERY_TASK_ALWAYS_EAGER="1"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from digest.delivery.chunk_timing import chunk_tally
    from digest.models import SendTally
    from digest.ops.metrics import send_chunks

    call_command("migrate", verbosity=0)
    chunk_size = settings.DIGEST_CHUNK_SIZE
    chunks_per_minute = max(1, round(args.digests_per_day / chunk_size / MINUTES))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    for minute in range(MINUTES):
        counts: dict[str, int] = {}
        for n in range(chunks_per_minute):
            for name, value in chunk_tally(0.2 + (minute * 7 + n) % 40 / 10, chunk_size).items():
                counts[name] = counts.get(name, 0) + value
        rows.append(SendTally(minute=now - timedelta(minutes=minute), tried=chunks_per_minute * chunk_size, **counts))
    SendTally.objects.all().delete()
    SendTally.objects.bulk_create(rows)

    seconds = []
    for _ in range(args.times):
        started = time.perf_counter()
        figures = send_chunks(now + timedelta(seconds=30))
        seconds.append(time.perf_counter() - started)
    median, slowest = statistics.median(seconds), max(seconds)
    print(f"{len(rows)} minute rows, {figures.count} chunks, {figures.digests} digests in the window")
    print(f"send_chunks: median {median * 1000:.2f} ms, slowest {slowest * 1000:.2f} ms over {args.times}")
    print(f"rows={len(rows)} chunks={figures.count} median_ms={median * 1000:.2f} slowest_ms={slowest * 1000:.2f}")


if __name__ == "__main__":
    main()

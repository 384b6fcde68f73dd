"""The admin dashboard and changelists on a large generated database.

    .venv/bin/python bench/dashboard.py [--subscribers 100000] [--digests-each 5] [--papers 20000]

Fills a fresh SQLite database (or DATABASE_URL if it is set to a PostgreSQL database you can
wipe) with subscribers spread over 90 days, their deliveries and papers seen by four feeds, then
times:
- `dashboard_context()` (every chart and number of /admin/dashboard/) and its query count;
- the baseline, measured in the same run: the same subscriber chart computed the obvious way,
  reading every subscriber row into Python and classifying it for each day (results compared);
- the subscriber, delivery and paper changelists through the test client, with their query counts.
The last line is machine-readable.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH = 5000


def fill(subscribers: int, digests_each: int, papers: int, seed: int = 7) -> None:
    from django.utils import timezone

    from digest.management.progress import progress
    from digest.models import Delivery, Feed, Paper, PaperSource
    from subscribers.models import Subscriber, Topic

    rng = random.Random(seed)
    now = timezone.now()
    # Generated history: keep the signup dates given instead of stamping every row "now".
    Subscriber._meta.get_field("created_at").auto_now_add = False
    topics = Topic.objects.bulk_create(Topic(slug=f"t{i}", name=f"Topic {i}", description="d") for i in range(12))
    feeds = Feed.objects.bulk_create(Feed(url=f"https://feeds.example/{i}", name=f"Feed {i}") for i in range(4))
    statuses = ["active"] * 7 + ["pending", "paused", "unsubscribed"]
    for start in progress(range(0, subscribers, BATCH), -(-subscribers // BATCH), "Subscribers"):
        rows = []
        for i in range(start, min(start + BATCH, subscribers)):
            created = now - timedelta(days=rng.uniform(0, 90))
            status = rng.choice(statuses)
            rows.append(
                Subscriber(
                    email=f"s{i}@example.org",
                    status=status,
                    created_at=created,
                    confirmed_at=created + timedelta(hours=1) if status != "pending" else None,
                    unsubscribed_at=created + timedelta(days=rng.uniform(1, 20)) if status == "unsubscribed" else None,
                )
            )
        made = Subscriber.objects.bulk_create(rows)
        Subscriber.topics.through.objects.bulk_create(
            Subscriber.topics.through(subscriber=s, topic=topics[rng.randrange(len(topics))]) for s in made
        )
        Delivery.objects.bulk_create(
            Delivery(
                subscriber=s,
                period=f"p{d}",
                scheduled_for=now - timedelta(days=d * 2),
                sent_at=now - timedelta(days=d * 2),
                status="failed" if rng.random() < 0.03 else "sent",
            )
            for s in made
            for d in range(digests_each)
        )
    for start in progress(range(0, papers, BATCH), -(-papers // BATCH), "Papers"):
        made = Paper.objects.bulk_create(
            Paper(guid=f"g{i}", title=f"Paper {i}", categories=["cs.LG"])
            for i in range(start, min(start + BATCH, papers))
        )
        PaperSource.objects.bulk_create(PaperSource(paper=p, feed=feeds[rng.randrange(len(feeds))]) for p in made)


def naive_subscribers_over_time(days: int):
    """The baseline: every subscriber row into Python, classified day by day."""
    from digest.ops.stats import DaySeries, day_range, status_on
    from subscribers.models import Subscriber

    span = day_range(days)
    result = DaySeries(span, {status: [0] * len(span) for status in Subscriber.Status.values})
    rows = Subscriber.objects.order_by().values_list("status", "created_at", "confirmed_at", "unsubscribed_at")
    for status, created, confirmed, unsubscribed in rows.iterator(chunk_size=10000):
        created_day = created.date()
        confirmed_day = confirmed.date() if confirmed else None
        unsubscribed_day = unsubscribed.date() if unsubscribed else None
        for i, day in enumerate(span):
            if created_day <= day:
                result.series[status_on(day, status, confirmed_day, unsubscribed_day)][i] += 1
    return result


def timed(function, repeat: int = 3):
    """Best of `repeat` wall-clock runs, with the number of queries of one run."""
    from django.db import connection

    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql[:30])
        return execute(sql, params, many, context)

    best, value = float("inf"), None
    for _ in range(repeat):
        queries.clear()
        with connection.execute_wrapper(count):
            started = time.perf_counter()
            value = function()
            best = min(best, time.perf_counter() - started)
    return best, value, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--digests-each", type=int, default=5)
    parser.add_argument("--papers", type=int, default=20_000)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="paperboy-bench-")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["PAPERBOY_VAR_DIR"] = workdir
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from digest.ops.dashboard import dashboard_context
    from digest.ops.stats import subscribers_over_time

    settings.ALLOWED_HOSTS = ["testserver"]
    Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        call_command("flush", interactive=False, verbosity=0)
    started = time.perf_counter()
    fill(args.subscribers, args.digests_each, args.papers)
    print(
        f"filled {connection.vendor}: {args.subscribers} subscribers, "
        f"{args.subscribers * args.digests_each} deliveries, "
        f"{args.papers} papers in {time.perf_counter() - started:.0f} s"
    )

    ours_s, ours, _ = timed(lambda: subscribers_over_time(30))
    naive_s, naive, naive_queries = timed(lambda: naive_subscribers_over_time(30), repeat=1)
    assert ours.series == naive.series, "the grouped selector disagrees with the row-by-row baseline"
    dashboard_s, _, dashboard_queries = timed(dashboard_context)
    print(f"subscribers chart, grouped in the database: {ours_s * 1000:.0f} ms")
    print(f"subscribers chart, row by row in Python (baseline): {naive_s * 1000:.0f} ms")
    print(f"whole dashboard context: {dashboard_s * 1000:.0f} ms, {dashboard_queries} queries")

    client = Client()
    client.force_login(User.objects.create_superuser("bench", "bench@example.org", "x"))
    pages = {}
    for name, url in (
        ("subscribers", "/admin/subscribers/subscriber/"),
        ("deliveries", "/admin/digest/delivery/"),
        ("papers", "/admin/digest/paper/"),
        ("dashboard", "/admin/dashboard/"),
    ):
        seconds, response, queries = timed(lambda url=url: client.get(url))
        assert response.status_code == 200, (url, response.status_code)
        pages[name] = (seconds, queries)
        print(f"GET {url}: {seconds * 1000:.0f} ms, {queries} queries")
    print(
        f"subscribers={args.subscribers} deliveries={args.subscribers * args.digests_each} "
        f"chart_ms={ours_s * 1000:.0f} baseline_ms={naive_s * 1000:.0f} ratio={naive_s / ours_s:.1f} "
        f"dashboard_ms={dashboard_s * 1000:.0f} dashboard_queries={dashboard_queries} "
        + " ".join(f"{name}_page_ms={s * 1000:.0f} {name}_page_queries={q}" for name, (s, q) in pages.items())
    )


if __name__ == "__main__":
    main()

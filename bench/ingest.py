"""Ingestion throughput against bare feedparser on the same generated arXiv RSS document.

    .venv/bin/python bench/ingest.py [--entries 20000] [--rounds 3]

Builds an rss.arxiv.org-style RSS 2.0 feed, times `feedparser.parse` of it (the baseline, with
the options ingestion uses and with feedparser's defaults), then a full ingest (parse, clean,
store) into a fresh SQLite database, then the same ingest again (every paper unchanged); the
best of a few rounds of each.
The last line is machine-readable.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.environment import fresh_postgres_database  # noqa: E402

WORDS = (
    "model learning neural network attention transformer diffusion representation training data "
    "benchmark results method propose show performance language vision graph optimization robust "
    "efficient sparse latent implicit signal video token inference memory layer gradient loss"
).split()
CATEGORIES = ["cs.LG", "cs.AI", "cs.CV", "cs.CL", "stat.ML", "cs.NE", "eess.IV"]
ANNOUNCE_TYPES = ["new", "new", "new", "cross", "replace", "replace-cross"]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def build_feed(entries: int, seed: int = 7) -> bytes:
    from digest.management.progress import progress

    rng = random.Random(seed)
    items = []
    for n in progress(range(entries), entries, "Generating entries"):
        arxiv_id = f"26{(n // 99999) % 100:02d}.{n % 99999:05d}"
        version = 1 if rng.random() < 0.8 else rng.randint(2, 4)
        announce = ANNOUNCE_TYPES[n % len(ANNOUNCE_TYPES)]
        abstract = ". ".join(sentence(rng, 18) for _ in range(9)) + " &amp; more."
        authors = ", ".join(f"{sentence(rng, 1)} {sentence(rng, 1)}" for _ in range(rng.randint(1, 12)))
        cats = "".join(f"<category>{c}</category>" for c in rng.sample(CATEGORIES, rng.randint(1, 3)))
        items.append(
            f"<item><title>{sentence(rng, 10)}</title><link>https://arxiv.org/abs/{arxiv_id}</link>"
            f"<description>arXiv:{arxiv_id}v{version} Announce Type: {announce} \nAbstract: {abstract}</description>"
            f'<guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v{version}</guid>{cats}'
            f"<pubDate>Mon, 27 Apr 2026 00:00:00 -0400</pubDate>"
            f"<arxiv:announce_type>{announce}</arxiv:announce_type>"
            f"<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>"
            f"<dc:creator>{authors}</dc:creator></item>\n"
        )
    return (
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'version="2.0"><channel><title>cs.LG updates on arXiv.org</title>'
        "<link>http://rss.arxiv.org/rss/cs.LG</link><description>bench</description>\n"
        + "".join(items)
        + "</channel></rss>\n"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server URL (postgres://user@host:port/NAME): database NAME is dropped and recreated",
    )
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="paperboy-bench-")
    if args.postgres:
        fresh_postgres_database(args.postgres)
        os.environ["DATABASE_URL"] = args.postgres
        where = args.postgres
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
        where = f"{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    # Storing papers queues their sentence vectors: to the bench's own filesystem broker, not var/'s.
    os.environ["PAPERBOY_VAR_DIR"] = workdir
    import django

    django.setup()
    import feedparser
    from django.core.management import call_command
    from django.db import connection

    from digest.models import Feed, Paper
    from digest.papers.ingestion import ingest_document

    call_command("migrate", verbosity=0)
    body = build_feed(args.entries)
    n = args.entries
    print(f"document: {n} entries, {len(body) / 1e6:.1f} MB, database {where}")

    started = time.perf_counter()
    feedparser.parse(body)
    default_parse_s = time.perf_counter() - started

    queries: list[str] = []

    def count_query(execute, sql, params, many, context):
        # Counting only: CaptureQueriesContext would also format every SQL string with its
        # parameters (megabytes of abstracts), which is the measurement's cost, not ingestion's.
        queries.append(sql[:30])
        return execute(sql, params, many, context)

    # Best of several rounds: the figures are for this code, not for whatever else the machine runs.
    parse_s = ingest_s = again_s = parse_cpu = ingest_cpu = float("inf")
    for round_number in range(1, args.rounds + 1):
        started, cpu = time.perf_counter(), time.process_time()
        parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
        parse_s = min(parse_s, time.perf_counter() - started)
        parse_cpu = min(parse_cpu, time.process_time() - cpu)
        assert len(parsed.entries) == n, len(parsed.entries)
        del parsed

        call_command("flush", interactive=False, verbosity=0)
        # arXiv's own address: the document is read and stored as arXiv's (it sets text and versions).
        feed = Feed.objects.create(url="https://rss.arxiv.org/rss/cs.LG", kind=Feed.Kind.ARXIV_RSS)
        queries.clear()
        with connection.execute_wrapper(count_query):
            started, cpu = time.perf_counter(), time.process_time()
            report = ingest_document(body, feed.url, feed)
            ingest_s = min(ingest_s, time.perf_counter() - started)
            ingest_cpu = min(ingest_cpu, time.process_time() - cpu)
        assert report.counts.new == n == Paper.objects.count(), report.summary()

        started = time.perf_counter()
        again = ingest_document(body, feed.url, feed)
        again_s = min(again_s, time.perf_counter() - started)
        assert again.counts.unchanged == n, again.summary()
        print(f"round {round_number}/{args.rounds} done", file=sys.stderr)

    parse_rate, ingest_rate = n / parse_s, n / ingest_s
    print(f"bare feedparser.parse (ingestion's options): {parse_s:.2f} s, {parse_rate:,.0f} entries/s")
    print(
        f"bare feedparser.parse (defaults, sanitizing, one round): {default_parse_s:.2f} s, "
        f"{n / default_parse_s:,.0f} entries/s"
    )
    print(
        f"full ingest, fresh database (parse+clean+store): {ingest_s:.2f} s, {ingest_rate:,.0f} entries/s, "
        f"{len(queries)} queries"
    )
    print(f"re-ingest, every paper unchanged: {again_s:.2f} s, {n / again_s:,.0f} entries/s")
    # CPU time of this process: steadier than wall time on a shared machine, and on SQLite it
    # includes the database's work (on PostgreSQL the server's share is not in it).
    print(f"CPU seconds: parse {parse_cpu:.2f}, full ingest {ingest_cpu:.2f}")
    print(
        f"entries={n} ingest_per_s={ingest_rate:.0f} parse_per_s={parse_rate:.0f} "
        f"ratio={ingest_rate / parse_rate:.2f} queries_per_entry={len(queries) / n:.4f} "
        f"cpu_ratio={parse_cpu / ingest_cpu:.2f}"
    )


if __name__ == "__main__":
    main()

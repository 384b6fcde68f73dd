"""Digest email building: messages built per second, with the per-process card cache and without.

    .venv/bin/python bench/digest_email.py [--digests 2000] [--papers 10]

Stores the seed page's papers and one subscriber per digest in a fresh SQLite database, then
builds every digest to the bytes a backend sends (`build_digest_message(...).message_bytes()`) twice: the
baseline clears the card cache before each digest (every card's values worked out again, as before the
cache), the second run keeps it (each card rendered once). Each digest shows `--papers` papers
drawn from the same pool, as a day's digests do. Times are CPU seconds of this process (building
is pure CPU, and CPU time does not count other programs sharing the machine). The last line is
machine-readable.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digests", type=int, default=2000)
    parser.add_argument("--papers", type=int, default=10, help="papers per digest")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="paperboy-bench-email-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3",
            "PAPERBOY_VAR_DIR": folder,
            "SITE_URL": "https://paperboy.example.org",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from digest.delivery.digest_email import build_digest_message, clear_card_cache, delivery_papers
    from digest.management.progress import progress
    from digest.models import Candidate, Delivery
    from subscribers.models import Subscriber
    from tests.support.digest_samples import PUBLISHED, make_paper, make_subscriber, reason_for, seed_papers

    rng = random.Random(5)
    papers = [make_paper(i, title, abstract) for i, (title, abstract) in enumerate(seed_papers())]
    make_subscriber("template@example.org")  # creates the topic
    digests = []
    for n in progress(range(args.digests), args.digests, "Storing digests"):
        subscriber = Subscriber.objects.create(
            email=f"reader{n}@example.org", status="active", keywords='"neural representation", interpretability'
        )
        delivery = Delivery.objects.create(subscriber=subscriber, period=f"p{n}", scheduled_for=PUBLISHED)
        picked = rng.sample(papers, min(args.papers, len(papers)))
        held = Candidate.objects.bulk_create(
            Candidate(subscriber=subscriber, paper=p, score=1 - i / 100, reason=reason_for(p.title))
            for i, p in enumerate(picked)
        )
        Delivery.objects.filter(pk=delivery.pk).update(  # the range a claim would give it
            candidates_after=min(c.pk for c in held) - 1, candidates_through=max(c.pk for c in held)
        )
        delivery.refresh_from_db()
        digests.append(delivery.pk)

    loaded = []
    for delivery in Delivery.objects.filter(pk__in=digests).select_related("subscriber"):
        subscriber = Subscriber.objects.prefetch_related("topics").get(pk=delivery.subscriber_id)
        loaded.append((subscriber, delivery_papers(delivery)[0], delivery))  # as sending loads them

    def build_all(cold: bool) -> tuple[float, int]:
        size = 0
        started = time.process_time()
        for subscriber, candidates, delivery in progress(loaded, len(loaded), "cold" if cold else "cached"):
            if cold:
                clear_card_cache()
            raw = build_digest_message(subscriber, candidates, 3, delivery=delivery).message_bytes()
            size += len(raw)
        return time.process_time() - started, size // len(loaded)

    cold_s, size = build_all(cold=True)
    warm_s, _ = build_all(cold=False)
    cold_rate, warm_rate = len(loaded) / cold_s, len(loaded) / warm_s
    print(f"{len(loaded)} digests of {args.papers} papers, {size} bytes each on average")
    print(f"without card cache: {cold_rate:8.0f} digests/s ({1000 / cold_rate:.2f} ms each)")
    print(f"with card cache:    {warm_rate:8.0f} digests/s ({1000 / warm_rate:.2f} ms each)")
    print(
        f"digests={len(loaded)} papers={args.papers} cold_per_s={cold_rate:.0f} cached_per_s={warm_rate:.0f} "
        f"speedup={warm_rate / cold_rate:.2f}"
    )


if __name__ == "__main__":
    main()

"""What a Prometheus scrape of /metrics costs on a database that holds a real run.

    .venv/bin/python bench/metrics.py --database-url postgres://postgres@127.0.0.1:5432/paperboy_scaleout

Point it at a database a bench filled (bench/scaleout.py or bench/digests.py with --database-url):
it renders the metrics `--times` times (the collector's queries, as a scrape runs them) and prints
the median and slowest, the rows behind them, and the figures a Grafana board would show. The
database is only read. Last line machine-readable.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import bench_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--times", type=int, default=11)
    args = parser.parse_args()
    # No broker to ask: the queues read as empty.
    os.environ.update(bench_environment(args.database_url, CELERY_TASK_ALWAYS_EAGER="1"))
    import django

    django.setup()
    from prometheus_client.parser import text_string_to_metric_families

    from digest.models import Candidate, Delivery
    from digest.ops.metrics import render_metrics

    seconds = []
    for _ in range(args.times):
        started = time.perf_counter()
        text = render_metrics()
        seconds.append(time.perf_counter() - started)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }
    deliveries, candidates = Delivery.objects.count(), Candidate.objects.count()
    sent = samples.get(("paperboy_digests", (("status", "sent"),)), 0)
    median, slowest = statistics.median(seconds), max(seconds)
    print(f"{deliveries} deliveries, {candidates} candidates; {len(samples)} samples per scrape")
    print(f"scrape: median {median * 1000:.0f} ms, slowest {slowest * 1000:.0f} ms over {args.times}")
    print(
        f"paperboy_digests{{status=sent}} {sent:.0f}, "
        f"paperboy_candidates_stored {samples[('paperboy_candidates_stored', ())]:.0f}"
    )
    print(
        f"deliveries={deliveries} candidates={candidates} "
        f"scrape_median_ms={median * 1000:.0f} scrape_max_ms={slowest * 1000:.0f}"
    )


if __name__ == "__main__":
    main()

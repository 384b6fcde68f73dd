"""Where one matching worker's time goes, per subscriber: its own CPU, its database backend's CPU,
and the statements it makes.

    .venv/bin/python bench/match_profile.py --database-url postgres://postgres@127.0.0.1:5432/paperboy_bench \
        [--subscribers 5000] [--cprofile 30]

Reuses the database of a previous `bench/digests.py --database-url ...` run (its subscribers and
papers): empties the candidate table (TRUNCATE, so each run starts from the table a fresh match
run starts from) and the match runs, starts a run over all papers as the bench does, then matches
the first `--subscribers` subscribers in this one process, chunk by chunk (`match_chunk`), the
first chunk unmeasured (it builds the run's index). CPU times are the process's own (`getrusage`)
and its backend's (/proc/<pid>/schedstat: the server runs on this machine), so other programs
sharing the cores do not count; statements are counted by Django's execute wrapper. PostgreSQL
only. The last line is machine-readable.
"""

import argparse
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import bench_environment  # noqa: E402
from bench.send_profile import (  # noqa: E402
    StatementTimes,
    backend_cpu_seconds,
    print_profile,
    process_cpu_seconds,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="the PostgreSQL database of a bench/digests.py run")
    parser.add_argument("--subscribers", type=int, default=5000, help="subscribers to match (whole chunks)")
    parser.add_argument("--cprofile", type=int, default=0, help="print this many of the worker's costliest functions")
    args = parser.parse_args()
    os.environ.update(bench_environment(args.database_url, folder=tempfile.mkdtemp(prefix="paperboy-profile-")))
    os.environ.pop("REDIS_URL", None)
    profile(args)


def profile(args) -> None:
    import django

    django.setup()
    from django.db import connection

    from digest.matching.runs import match_chunk, start_match_run

    if connection.vendor != "postgresql":
        raise SystemExit("PostgreSQL only: give the --database-url of a bench/digests.py run")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE digest_candidate, digest_matchchunk, digest_matchrun")
    plan = start_match_run(all_papers=True)
    if plan is None:
        raise SystemExit("no papers to match")
    subscribers = sum(len(chunk) for chunk in plan.chunks)
    chunks = plan.chunks[: max(2, -(-args.subscribers // len(plan.chunks[0])))]
    match_chunk(plan.run_id, chunks.pop(0))  # warm: the run's index, the connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    statements = StatementTimes(backend)

    cpu_before, backend_before, wall_before = process_cpu_seconds(), backend_cpu_seconds(backend), time.perf_counter()
    matched = candidates = 0
    profiler = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU time, not wall
    per_chunk = []  # the backend's CPU per subscriber of each chunk: does it grow with the table?
    with connection.execute_wrapper(statements):
        for chunk in chunks:
            if profiler:
                profiler.enable()
            serving = backend_cpu_seconds(backend)
            candidates += match_chunk(plan.run_id, chunk)
            per_chunk.append((backend_cpu_seconds(backend) - serving) / len(chunk))
            if profiler:
                profiler.disable()
            matched += len(chunk)
    cpu, wall = process_cpu_seconds() - cpu_before, time.perf_counter() - wall_before
    database = backend_cpu_seconds(backend) - backend_before
    per = 1000 / matched
    print(f"{matched} of {subscribers} subscribers in {len(chunks)} chunks, {candidates} candidates, {wall:.1f} s wall")
    print(f"worker CPU {cpu * per:.3f} ms per subscriber; database backend CPU {database * per:.3f} ms per subscriber")
    quarter = max(1, len(per_chunk) // 4)
    print(
        f"database backend CPU per subscriber, first and last quarter of the chunks: "
        f"{sum(per_chunk[:quarter]) / quarter * 1000:.3f} ms, {sum(per_chunk[-quarter:]) / quarter * 1000:.3f} ms"
    )
    print("by kind: per chunk, then per subscriber the worker's wall time waiting and the backend's CPU in them")
    statements.print_by_kind(len(chunks), per)
    print_profile(profiler, args.cprofile)
    print(
        f"subscribers={matched} candidates={candidates} wall_ms={wall * per:.3f} worker_cpu_ms={cpu * per:.3f} "
        f"database_cpu_ms={database * per:.3f}"
    )


if __name__ == "__main__":
    main()

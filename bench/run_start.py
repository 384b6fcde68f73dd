"""`make run`'s first start, timed: to its last line, to the seed papers' stored vectors, and a
first `subscribe --interest --confirmed` (it matches in the command, vectors and all).

    python bench/run_start.py --rounds 6
    python bench/run_start.py --rounds 6 --root /path/to/a/checkout --vectors-wait 0

`--root`: time another checkout's bin/run-dev (with its own .venv, a symlink will do); `--vectors-wait
0` for one that queues no seed vectors (before this was measured), whose first match encodes them.

Each round runs bin/run-dev from a fresh var/ folder in a temporary directory, offline (its one feed
is a local port nobody listens on, so the 62 seed papers are all the papers), then stops it. Loading
the seeds queues their sentence vectors and the worker encodes them (docs/decisions.md, "Paper
vectors queued where papers are stored"). The last line is machine-readable.
"""

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port  # noqa: E402
from tests.web.run_dev import make_run  # noqa: E402

SEED_PAPERS = 62


def stored_vectors(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("select count(*) from digest_textvector").fetchone()[0]


def one_start(root: Path, vectors_wait: float) -> dict[str, float | None]:
    var = Path(tempfile.mkdtemp(prefix="paperboy-run-start-")) / "var"
    offline_feed = f"http://127.0.0.1:{free_port()}/rss/cs.LG"
    result: dict[str, float | None] = {"ready_s": None, "seed_vectors_s": None, "first_subscribe_s": None}
    started = time.monotonic()
    with make_run(var, [offline_feed], root=root) as running:
        result["ready_s"] = time.monotonic() - started
        database = var / "paperboy.sqlite3"
        while time.monotonic() < started + result["ready_s"] + vectors_wait:
            if stored_vectors(database) >= SEED_PAPERS:
                result["seed_vectors_s"] = time.monotonic() - started
                break
            time.sleep(0.25)
        subscribing = time.monotonic()
        subprocess.run(
            [str(root / ".venv" / "bin" / "python"), "manage.py", "subscribe", "ana@example.org", "--confirmed"]
            + ["--interest", "neural radiance fields for scene reconstruction"],
            cwd=root,
            env=running.env,
            check=True,
            capture_output=True,
        )
        result["first_subscribe_s"] = time.monotonic() - subscribing
    return result


def median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 1) if len(known) == len(values) else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose bin/run-dev is timed")
    parser.add_argument("--vectors-wait", type=float, default=60, help="seconds after the start to wait for them")
    args = parser.parse_args()
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append(one_start(args.root.resolve(), args.vectors_wait))
        shown = {key: None if value is None else round(value, 1) for key, value in rounds[-1].items()}
        print(f"round {number}/{args.rounds}: {shown}", file=sys.stderr)
    keys = ("ready_s", "seed_vectors_s", "first_subscribe_s")
    summary = {key: median([result[key] for result in rounds]) for key in keys}
    print(f"median of {args.rounds}: ready {summary['ready_s']} s, seed vectors stored {summary['seed_vectors_s']} s")
    print(f"  after the start, a first subscribe with an interest {summary['first_subscribe_s']} s")
    print(json.dumps({"rounds": args.rounds, **summary}))


if __name__ == "__main__":
    main()

"""Load: the signup page, signup posts and the one-click unsubscribe under 50 concurrent clients.

    .venv/bin/python bench/load.py                      # 10 s per endpoint, 50 clients
    .venv/bin/python bench/load.py --seconds 5 --clients 20

gunicorn (config.wsgi, --workers sync workers) on an ephemeral 127.0.0.1 port, with production
settings (DEBUG=0) on a fresh PostgreSQL database (`paperboy_load`, migrated and seeded) and Redis
(db 7 by default: cache, rate limits, broker). wrk (Debian package; bin/install-system-packages)
drives it with bench/load.lua, one connection per wrk thread so that each thread's n-th answer is
its n-th request. Measured in turn, each for --seconds (and at most --max requests per client):

  ceiling      GET /check-your-inbox/: a trivial Django view through the same middleware stack
  signup page  GET /
  signup       POST / with a unique address each time (one CSRF token and cookie, reused)
  unsubscribe  POST /unsubscribe/<token>/ with List-Unsubscribe=One-Click (RFC 8058)

Rate limits are raised for the run through their settings: SIGNUP_RATE_PER_IP and
SIGNUP_RATE_PER_ADDRESS (every client is 127.0.0.1). A signup request only queues its work to
Redis; afterwards a Celery worker runs the queue (confirmation emails go to its console), and
every signup that was answered is checked to be in the database exactly once. The Redis db is
flushed before and after. Last line machine-readable.
"""

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import fresh_postgres_database  # noqa: E402
from tests.support.servers import free_port, wait_for_port  # noqa: E402

LOAD_LINE = re.compile(r"^LOAD (.*)$", re.M)


def parse_wrk(output: str) -> dict:
    found = LOAD_LINE.search(output)
    if not found:
        raise SystemExit(f"wrk printed no summary:\n{output}")
    fields = dict(item.split("=", 1) for item in found.group(1).split())
    threads = [tuple(int(n) for n in part.split(":")) for part in fields.pop("threads").split(",") if part]
    result = {key: float(value) for key, value in fields.items()}
    result["per_thread"] = threads  # (thread id, answered, failed)
    result["rps"] = result["requests"] / result["seconds"]
    result["errors"] = sum(int(result[k]) for k in ("connect", "read", "write", "status", "timeout"))
    return result


def run_wrk(base: str, args, env: dict, **lua_env) -> dict:
    command = [
        "wrk",
        f"-t{args.clients}",
        f"-c{args.clients}",
        f"-d{args.seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / "load.lua"),
        base,
    ]
    output = subprocess.run(
        command,
        env={**env, **lua_env, "LOAD_MAX": str(args.max)},
        capture_output=True,
        text=True,
        timeout=args.seconds * 3 + 60,
        check=True,
    ).stdout
    return parse_wrk(output)


def prepare_database(database_url: str, env: dict) -> None:
    fresh_postgres_database(database_url)
    for command in (["migrate", "--noinput", "-v0"], ["loadseeds"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )


def unsubscribe_tokens(count: int, folder: Path) -> Path:
    from subscribers.models import Subscriber
    from subscribers.tokens import make_token

    rows = Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n}@load.example.org", status=Subscriber.Status.ACTIVE) for n in range(count)
    )
    path = folder / "tokens.txt"
    path.write_text("\n".join(make_token(s, "unsubscribe") for s in rows) + "\n")
    return path


def warm_up(base: str, workers: int) -> None:
    """Every worker imports its views and templates on its first requests; not part of the figures."""
    import requests

    for _ in range(workers * 3):
        for path in ("/check-your-inbox/", "/"):
            requests.get(base + path, timeout=120).raise_for_status()


def csrf_pair(base: str) -> tuple[str, str]:
    import requests

    with requests.Session() as session:
        page = session.get(base + "/", timeout=120)
        page.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return session.cookies["csrftoken"], token


def drain(queue, env: dict, folder: Path) -> float:
    """A Celery worker runs the queued signups (and their confirmation emails, to the console)."""
    celery = str(Path(sys.executable).with_name("celery"))
    worker = subprocess.Popen(
        [
            celery,
            "-A",
            "config",
            "worker",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"load{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=(folder / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        while queue.llen("celery") and time.monotonic() - started < 900:
            time.sleep(0.5)
        time.sleep(3)  # the last tasks taken finish
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    return time.monotonic() - started


def check_signups(run: str, answered_file: Path) -> dict:
    """Every answered signup is stored exactly once; at most one per client was still in flight."""
    from django.db.models import Count
    from django.db.models.functions import Lower

    from subscribers.models import Subscriber

    rows = Subscriber.objects.filter(email__startswith=f"load-{run}-").annotate(address=Lower("email"))
    counts = dict(rows.values_list("address").annotate(n=Count("id")).values_list("address", "n"))
    pairs = [line.split() for line in answered_file.read_text().splitlines() if line.strip()]
    answered = {f"load-{run}-{thread}-{n}@example.org" for thread, n in pairs}
    missing = sorted(answered - set(counts))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    unanswered = set(counts) - answered
    return {
        "answered": len(answered),
        "stored": sum(counts.values()),
        "missing": len(missing),
        "duplicates": duplicates,
        "in_flight_at_stop": len(unanswered),
        "examples_missing": missing[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections (one wrk thread each)")
    parser.add_argument("--seconds", type=int, default=10, help="per endpoint")
    parser.add_argument("--max", type=int, default=5000, help="requests per client at most, per endpoint")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/paperboy_load"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/7"))
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    folder = Path(tempfile.mkdtemp(prefix="paperboy-load-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": base,
        "CSRF_TRUSTED_ORIGINS": base,
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": args.database_url,
        "DB_CONN_MAX_AGE": "600",
        "REDIS_URL": args.redis_url,
        "EMAIL_URL": "console://",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "SIGNUP_RATE_PER_IP": "100000000",
        "SIGNUP_RATE_PER_ADDRESS": "1000",
        "PAPERBOY_VAR_DIR": str(folder / "var"),
        "LOG_LEVEL": "WARNING",
    }
    print(f"preparing {args.database_url} (migrate, seeds, collectstatic)", flush=True)
    prepare_database(args.database_url, env)
    os.environ.update(env)
    import django

    django.setup()
    import redis

    queue = redis.Redis.from_url(args.redis_url)
    queue.flushdb()
    tokens = unsubscribe_tokens(2000, folder)

    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [
            gunicorn,
            "config.wsgi",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=(folder / "gunicorn.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    results = {}
    run = secrets.token_hex(3)
    try:
        wait_for_port(port)
        warm_up(base, args.workers)
        cookie, token = csrf_pair(base)
        plan = [
            ("ceiling", {"LOAD_MODE": "get", "LOAD_PATH": "/check-your-inbox/"}),
            ("signup_page", {"LOAD_MODE": "get", "LOAD_PATH": "/"}),
            (
                "signup",
                {
                    "LOAD_MODE": "signup",
                    "LOAD_RUN": run,
                    "LOAD_CSRF_COOKIE": cookie,
                    "LOAD_CSRF_TOKEN": token,
                    "LOAD_ANSWERED": str(folder / "answered.txt"),
                },
            ),
            ("unsubscribe", {"LOAD_MODE": "unsubscribe", "LOAD_TOKENS": str(tokens)}),
        ]
        for name, lua_env in plan:
            result = results[name] = run_wrk(base, args, env, **lua_env)
            print(
                f"{name:12s} {result['rps']:8.0f} req/s  p50 {result['p50_us'] / 1000:7.1f} ms  "
                f"p99 {result['p99_us'] / 1000:7.1f} ms  errors {result['errors']}  "
                f"({int(result['requests'])} requests in {result['seconds']:.1f} s)",
                flush=True,
            )
        time.sleep(1)  # let gunicorn finish what was in flight when wrk stopped
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    queued = queue.llen("celery")
    drain_seconds = drain(queue, env, folder)
    queue.flushdb()

    signups = check_signups(run, folder / "answered.txt")
    unsubscribed = (
        __import__("subscribers.models", fromlist=["Subscriber"])
        .Subscriber.objects.filter(email__endswith="@load.example.org", status="unsubscribed")
        .count()
    )
    ceiling = results["ceiling"]["rps"]
    print(
        f"signups: {signups['answered']} answered; a worker ran the {queued} queued tasks in {drain_seconds:.0f} s: "
        f"{signups['stored']} stored, missing {signups['missing']}, duplicates {signups['duplicates']}, "
        f"in flight when wrk stopped {signups['in_flight_at_stop']}; {unsubscribed} of 2000 unsubscribed"
    )
    for name in ("signup_page", "signup", "unsubscribe"):
        print(f"{name}: {results[name]['rps'] / ceiling:.2f} x the ceiling")
    errors = sum(r["errors"] for r in results.values())
    print(
        " ".join(
            [f"clients={args.clients}", f"workers={args.workers}"]
            + [
                f"{name}_rps={r['rps']:.0f} {name}_p50_ms={r['p50_us'] / 1000:.1f} "
                f"{name}_p99_ms={r['p99_us'] / 1000:.1f}"
                for name, r in results.items()
            ]
            + [
                f"errors={errors}",
                f"signups={signups['answered']}",
                f"missing={signups['missing']}",
                f"duplicates={signups['duplicates']}",
            ]
        )
    )
    if errors or signups["missing"] or signups["duplicates"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

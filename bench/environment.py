"""What the benches that run Django against a database of their own share: the environment their
processes start with, a fresh PostgreSQL database to fill, and module constants patched for a run."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


def bench_environment(
    database_url: str, *, folder: str | None = None, smtp_port: int | None = None, **extra: str
) -> dict[str, str]:
    """Production-like settings (DEBUG would keep every query of a worker in memory), the bench's
    own folder and database (SQLite in the folder when no URL is given), its mail sink, and `extra`."""
    if not database_url and not folder:
        raise ValueError("a bench needs a database URL or a folder for its SQLite database")
    environment = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url or f"sqlite:///{folder}/bench.sqlite3",
        "SEND_RATE_PER_SECOND": "0",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
        "SECURE_SSL_REDIRECT": "0",
    }
    if folder:
        environment["PAPERBOY_VAR_DIR"] = str(folder)
    if smtp_port:
        environment["EMAIL_URL"] = f"smtp://127.0.0.1:{smtp_port}"
    return environment | extra


def fresh_postgres_database(url: str) -> None:
    """Drop (closing its connections) and create the database the URL names: a bench database."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"{url!r} does not name a bench database")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def patched(module: object, **values: object) -> Iterator[None]:
    """`module`'s attributes set to `values` inside the block, restored after it whatever happens."""
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)

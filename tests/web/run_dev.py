"""`make run`'s start script (bin/run-dev), run for real in a temporary var/ folder."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ROOT
from tests.support.servers import free_port

START_TIMEOUT = 120  # seconds; a fresh SQLite database is migrated first, on a shared machine
LAST_LINE = "Ctrl-C stops"


@dataclass
class Running:
    var: Path
    port: int
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def site(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def outbox(self) -> Path:
        return self.var / "outbox"


def environment(var: Path, port: int, feeds: list[str]) -> dict[str, str]:
    """This machine's environment, with everything `make run` keeps under `var` and no server of
    the test run's own (PostgreSQL, Redis) leaking in."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "EMAIL_URL"}}
    env.update(
        PAPERBOY_VAR_DIR=str(var),
        PORT=str(port),
        FEEDS=",".join(feeds),
        EMAIL_URL=f"file://{var / 'outbox'}",
        SITE_URL=f"http://127.0.0.1:{port}",
    )
    return env


@contextlib.contextmanager
def make_run(var: Path, feeds: list[str], root: Path = ROOT) -> Iterator[Running]:
    """`root`'s bin/run-dev until it has printed its last line; Ctrl-C (SIGINT) when the block ends."""
    port = free_port()
    running = Running(var=var, port=port, env=environment(var, port, feeds))
    process = subprocess.Popen(
        [str(root / "bin" / "run-dev")],
        cwd=root,
        env=running.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            running.lines.append(line.rstrip("\n"))
            if line.startswith(LAST_LINE):
                break
        else:
            raise AssertionError(f"no {LAST_LINE!r} line within {START_TIMEOUT} s")
        if not running.lines or not running.lines[-1].startswith(LAST_LINE):
            logs = "".join(
                f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in sorted(var.glob("log/*.log"))
            )
            raise AssertionError("bin/run-dev stopped before its last line:\n" + "\n".join(running.lines) + logs)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

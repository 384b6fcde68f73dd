"""The Celery app, and queueing a task by its name.

A caller queues by name rather than importing the task: the task modules import the code they
call, so the code that queues them cannot import them back (digest.send_digest_chunk is queued by
the dispatcher it calls, subscribers.subscribe by the services it wraps). The apps import their
task modules when they load (their `ready()`), so every process knows every task: one queued by
name runs eagerly where CELERY_TASK_ALWAYS_EAGER says so, exactly as `task.delay` would.
"""

import logging
import os
import reprlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path

from celery import Celery
from django.db import transaction

# OpenBLAS (numpy's and scipy's wheels), OpenMP, Intel MKL.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# numpy and scipy's BLAS (OpenBLAS) starts a thread per core in every process that loads it, and
# Paperboy runs a process per core (Celery's prefork pool, gunicorn's workers): more threads only
# contend for the same cores, and matching's products are too small to gain from them
# (docs/decisions.md, "BLAS threads"). Read when numpy loads, so set before anything imports it;
# a value in the environment wins.
for _variable in BLAS_THREAD_VARIABLES:
    os.environ.setdefault(_variable, "1")

app = Celery("paperboy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


# Set by `tasks_in_process()`: a command run by hand has no worker it can count on.
_in_process: ContextVar[bool] = ContextVar("tasks_in_process", default=False)


@contextmanager
def tasks_in_process() -> Iterator[None]:
    """Within it, a queued task runs at once in this process instead of going to the broker.

    For commands run by hand (`subscribe --confirmed` then `senddigests --now`): without it, the
    work they start waits in a broker that no worker may be reading, and the command's effect is
    only half there when it returns.
    """
    token = _in_process.set(True)
    try:
        yield
    finally:
        _in_process.reset(token)


def queue(task_name: str, *args: object) -> None:
    """`task.delay(*args)` for the task registered as `task_name` (run here within
    `tasks_in_process()`)."""
    signature = app.signature(task_name, args=args)
    if _in_process.get():
        signature.apply(throw=True)
    else:
        signature.delay()


def queue_on_commit(task_name: str, *args: object) -> None:
    """`task.delay_on_commit(*args)`: queued once the current transaction commits, never if it
    rolls back. A broker that refuses raises to the caller (after the commit)."""
    transaction.on_commit(partial(queue, task_name, *args))


def queue_on_commit_or_warn(task_name: str, *args: object, otherwise: str) -> None:
    """`queue_on_commit` for work that something else does if it is never queued: a broker that
    refuses is logged as a warning that says what does it instead (`otherwise`), and the caller
    goes on as if it had been queued. What the transaction wrote is committed either way."""

    def queue_or_warn() -> None:
        try:
            queue(task_name, *args)
        except Exception:
            # Within tasks_in_process() nothing was to queue: the task ran here, and failed.
            said = "%s%s ran in this process and failed; %s" if _in_process.get() else "could not queue %s%s; %s"
            log.warning(said, task_name, reprlib.repr(args), otherwise, exc_info=True)

    transaction.on_commit(queue_or_warn)


def run_here(task_name: str, *args: object) -> object:
    """The task's own function, run in this process (when it cannot be queued)."""
    return app.tasks[task_name].run(*args)


@app.on_after_configure.connect
def _make_filesystem_broker_folders(sender, **kwargs):
    # kombu's filesystem transport expects its folders to exist; web, worker and beat may start
    # in any order, so whichever comes first creates them.
    if str(sender.conf.broker_url).startswith("filesystem:"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            folder = sender.conf.broker_transport_options.get(key)
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)

"""Work run in a thread as a second worker would run it: with its own database connection."""

import threading
from collections.abc import Callable, Hashable, MutableMapping
from typing import Any

from django.db import connection


def in_thread(work: Callable[[], Any], results: MutableMapping[Hashable, Any], key: Hashable) -> threading.Thread:
    """Start `work()` in a thread; its return value goes to results[key]. The thread's database
    connection (Django opens one per thread) is closed when it ends."""

    def run() -> None:
        try:
            results[key] = work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread

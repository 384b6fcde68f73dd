"""Progress for long commands: a bar on a terminal, a plain line every few percent otherwise."""

import sys
from collections.abc import Iterable, Iterator
from io import TextIOBase
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T], total: int | None, desc: str, stream: TextIO | TextIOBase | None = None
) -> Iterator[T]:
    stream = stream or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        yield from tqdm(items, total=total, desc=desc, file=stream, unit="", dynamic_ncols=True)
        return
    step = max(1, (total or 0) // 10)
    for done, item in enumerate(items, 1):
        yield item
        if total and (done % step == 0 or done == total):
            stream.write(f"{desc}: {done}/{total} ({100 * done // total}%)\n")
            stream.flush()

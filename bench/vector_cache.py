"""Sentence vectors kept in a file between bench runs (outside the repository): encoding the fit
sets' texts costs minutes of CPU, and a bench that re-reads them needs none of it."""

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from digest.matching import embedding


@contextmanager
def vector_cache(path: Path | None, memory: MutableMapping[bytes, np.ndarray] | None = None) -> Iterator[None]:
    """`memory` (by default embedding.encode's in-process memory) filled from `path` and written
    back at the end."""
    memory = embedding._remembered if memory is None else memory
    if path is not None and path.exists():
        stored = np.load(path)
        for key, vector in zip(stored["keys"], stored["vectors"], strict=True):
            memory[bytes(key)] = vector
    try:
        yield
    finally:
        if path is not None and memory:
            keys = np.array([np.frombuffer(key, dtype=np.uint8) for key in memory])
            np.savez(path, keys=keys, vectors=np.vstack(list(memory.values())))

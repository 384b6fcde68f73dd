"""Sentence vectors computed once and stored (TextVector), so that a match run reads them.

Encoding costs about 0.1 s of CPU per abstract and 20 ms per short interest
(digest/matching/embedding.py): a run of 2,000 papers would spend 200 s on them, a chunk of 500
new interests 10 s. So a paper's vector is encoded when ingestion stores it (the task
`digest.store_paper_vectors`, which digest/papers/paper_store.py queues) and an interest's when
it is confirmed or changed (the task `digest.store_interest_vector`), and runs read them with
`stored_vectors`, one query per chunk.

`stored_vectors` never fails for a missing vector: whatever is not stored yet (a task still queued
or lost, a vector retention purged, a corrupted row) is encoded there and stored for the next
caller. Two workers storing the same text at once both succeed (the key is the text's, and the
insert ignores conflicts). Reading a vector marks it used today, in one UPDATE for the rows not
already so marked; retention deletes those nothing used for RETENTION_DAYS.
"""

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import date

import numpy as np
from django.utils import timezone

from digest.chunks import chunked
from digest.matching import embedding
from digest.matching.engine import build_matcher
from digest.matching.similarity import wanted_text
from digest.models import Paper, TextVector

Encoder = Callable[[Sequence[str]], np.ndarray]

VECTOR_BYTES = embedding.DIMENSIONS * 4
STORED_DTYPE = np.dtype("<f4")
# Keys per SELECT: a run's day of papers in one, within any database's parameter limit.
KEYS_PER_QUERY = 5000
# Texts encoded and inserted at a time: a worker stopped midway keeps what it stored (outside a
# transaction), about 10 s of encoding for abstracts.
ENCODE_CHUNK = 100


def text_key(text: str) -> bytes:
    """The stored row's key: the model and the text, so another model's vectors never answer."""
    return hashlib.sha1(f"{embedding.MODEL_NAME}\n{text}".encode(), usedforsecurity=False).digest()


def _decoded(blob: bytes | memoryview) -> np.ndarray | None:
    """The stored vector, or None for a row that cannot be one (wrong length, not finite)."""
    if len(blob) != VECTOR_BYTES:
        return None
    vector = np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)
    return vector if np.isfinite(vector).all() else None


def stored_vectors(texts: Sequence[str], encode: Encoder | None = None) -> np.ndarray:
    """A len(texts) x DIMENSIONS array of the texts' unit vectors: the stored ones read, the others
    encoded (`encode`, by default embedding.encode) and stored. Marks every one used today."""
    vectors = np.empty((len(texts), embedding.DIMENSIONS), dtype=np.float32)
    for position, vector in available_vectors(texts, None, encode).items():
        vectors[position] = vector
    return vectors


def available_vectors(
    texts: Sequence[str], encode_at_most: int | None, encode: Encoder | None = None
) -> dict[int, np.ndarray]:
    """Position in `texts` -> its unit vector: the stored ones read, and of the others the first
    `encode_at_most` (all for None) encoded (`encode`, by default embedding.encode) and stored.
    Marks every one returned used today."""
    encode = encode or embedding.encode
    keys = [text_key(text) for text in texts]
    text_of = dict(zip(keys, texts, strict=True))
    today = timezone.localdate()
    found: dict[bytes, np.ndarray] = {}
    stale: list[bytes] = []
    corrupted: list[bytes] = []
    for key, vector, used_on in _stored_rows(list(text_of)):
        if vector is None:
            corrupted.append(key)
        else:
            found[key] = vector
            if used_on < today:
                stale.append(key)
    if corrupted:
        TextVector.objects.filter(key__in=corrupted).delete()
    missing = [key for key in text_of if key not in found][:encode_at_most]
    # In key order: two transactions inserting overlapping texts wait for each other in the same order.
    for group in chunked(sorted(missing), ENCODE_CHUNK):
        encoded = encode([text_of[key] for key in group])
        rows = []
        for key, vector in zip(group, encoded, strict=True):
            found[key] = np.asarray(vector, dtype=np.float32)
            rows.append(TextVector(key=key, vector=found[key].astype(STORED_DTYPE).tobytes(), used_on=today))
        TextVector.objects.bulk_create(rows, ignore_conflicts=True)
    for group in chunked(stale, KEYS_PER_QUERY):
        TextVector.objects.filter(key__in=group, used_on__lt=today).update(used_on=today)
    return {position: found[key] for position, key in enumerate(keys) if key in found}


def vectors_if_stored(texts: Sequence[str]) -> dict[int, np.ndarray]:
    """Position in `texts` -> its stored unit vector, for the texts whose vector is stored: none is
    encoded or marked used. For callers that can do without the others and must not wait on
    encoding (a click's retraining reads its background papers so)."""
    positions: dict[bytes, list[int]] = {}
    for position, text in enumerate(texts):
        positions.setdefault(text_key(text), []).append(position)
    found: dict[int, np.ndarray] = {}
    for key, vector, _ in _stored_rows(list(positions)):
        if vector is not None:
            found.update(dict.fromkeys(positions[key], vector))
    return dict(sorted(found.items()))


def _stored_rows(keys: list[bytes]) -> Iterator[tuple[bytes, np.ndarray | None, date]]:
    """The stored rows of these keys, KEYS_PER_QUERY to a query: key, vector (None when the row is
    corrupted), the day it was last used."""
    for group in chunked(keys, KEYS_PER_QUERY):
        for key, blob, used_on in TextVector.objects.filter(key__in=group).values_list("key", "vector", "used_on"):
            yield bytes(key), _decoded(blob), used_on


def interest_text(interests: str) -> str:
    """The text of an interest that is encoded: what the matcher compares with papers
    (engine.match_many: the interest as the matcher holds it, its unwanted sentences left out)."""
    interests = build_matcher(interests=interests).interests
    return wanted_text(interests) if interests else ""


def paper_texts(paper_ids: Sequence[int]) -> list[str]:
    papers = Paper.objects.filter(id__in=paper_ids).order_by("id").values_list("title", "abstract")
    return [embedding.embedding_text(title, abstract) for title, abstract in papers]


def store_paper_vectors(paper_ids: Sequence[int]) -> int:
    """Store the vectors of these papers (those still stored); returns how many papers."""
    texts = paper_texts(paper_ids)
    if texts:
        stored_vectors(texts)
    return len(texts)


def store_interest_vector(interests: str) -> bool:
    """Store the vector of a subscriber's interest; False when there is no interest to encode."""
    text = interest_text(interests)
    if not text:
        return False
    stored_vectors([text])
    return True

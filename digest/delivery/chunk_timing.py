"""How long send chunks take: each finished chunk adds itself to its minute's SendTally row, in the
statement that already adds its digests tried and refused, so that /metrics can show a histogram
of chunk durations across every worker on every machine (docs/operations.md, `paperboy_send_chunk_*`).

One row per minute whatever the volume: a day is at most 1,440 rows to add up at a scrape.
"""

from digest.models import SEND_CHUNK_BUCKETS_MS


def bucket_field(bound_ms: int) -> str:
    """The SendTally column counting chunks that took at most `bound_ms` milliseconds."""
    return f"chunks_within_{bound_ms}ms"


def chunk_tally(seconds: float, digests: int) -> dict[str, int]:
    """What one finished chunk adds to its minute: itself, its digests, its milliseconds, and one
    to every bucket it fits in (the buckets are cumulative, as Prometheus's are)."""
    ms = max(0, round(seconds * 1000))
    counts = {"chunks": 1, "chunk_digests": digests, "chunk_ms": ms}
    counts.update({bucket_field(bound): int(ms <= bound) for bound in SEND_CHUNK_BUCKETS_MS})
    return counts

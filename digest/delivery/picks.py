"""What a digest shows, as plain values: its picks and their papers, loaded one way for every use.

Sending (a chunk of deliveries at a time), the digest's web page, previews and tests all read a
digest's papers through `load_picks`: one query for the candidates' ids, scores and reasons, one
for their papers (each loaded once however many picks show it), and no model instances, which
cost twice as much to make. A `PaperRow` holds every field a digest reads of a paper and nothing
else, and is hashable: the card cache (digest_email.paper_card) is keyed by the whole row, so a
changed paper can never be shown from a stale card.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from digest.models import Candidate, Paper
from digest.plain_sql import rows_unless_held


def author_names(authors: Iterable) -> list[str]:
    """Names from a paper's authors, stored as plain strings or as {"name": ...} objects."""
    names = []
    for author in authors or []:
        name = author.get("name", "") if isinstance(author, dict) else str(author)
        name = " ".join(name.split())
        if name:
            names.append(name)
    return names


@dataclass(frozen=True, slots=True)
class PaperRow:
    """What a digest reads of a paper; authors as their names."""

    id: int
    title: str
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    primary_category: str
    upvotes: int
    url: str
    pdf_url: str
    code_url: str
    arxiv_id: str | None
    published: datetime | None
    # What Hugging Face shows beside a paper; other sources have none.
    num_comments: int | None = None
    organization: str = ""
    thumbnail_url: str = ""

    @property
    def pk(self) -> int:
        return self.id


PAPER_FIELDS = tuple(field.name for field in fields(PaperRow))


@dataclass(frozen=True, slots=True)
class Pick:
    """A paper picked for a digest: the candidate's id, score and reason, with its paper."""

    id: int
    paper_id: int
    paper: PaperRow
    score: float
    reason: str


def paper_row(values: tuple) -> PaperRow:
    """A row of `values_list(*PAPER_FIELDS)` as a PaperRow."""
    row = dict(zip(PAPER_FIELDS, values, strict=True))
    row["authors"] = tuple(author_names(row["authors"]))
    row["categories"] = tuple(str(category) for category in row["categories"] or ())
    return PaperRow(**row)


PAPER_CACHE_SIZE = 5000  # as many as the card cache (digest_email.CARD_CACHE_SIZE): a run's papers
# PostgreSQL: the papers read so far, by id, with the row version they were read at.
_held: dict[int, tuple[str, PaperRow]] = {}


def load_papers(paper_ids: Iterable[int]) -> dict[int, PaperRow]:
    """The papers, by id (those deleted are missing). One query.

    On PostgreSQL a paper already read at its current row version is not read again: a digest
    run's chunks show the same few thousand papers, each chunk about eight per digest, and
    reading and converting them was a tenth of a sending worker's time. Any change to a paper
    makes a new row version, which is then read (digest/plain_sql.py, `rows_unless_held`).
    """
    ids = sorted(set(paper_ids))
    if connection.vendor != "postgresql":
        return {values[0]: paper_row(values) for values in Paper.objects.filter(id__in=ids).values_list(*PAPER_FIELDS)}
    held = {paper_id: _held[paper_id] for paper_id in ids if paper_id in _held}
    versions = {paper_id: version for paper_id, (version, _) in held.items()}
    found: dict[int, PaperRow] = {}
    for paper_id, version, values in rows_unless_held(Paper, ids, PAPER_FIELDS[1:], versions):
        if values is None:
            found[paper_id] = held[paper_id][1]
            continue
        if len(_held) >= PAPER_CACHE_SIZE:
            _held.clear()
        found[paper_id] = row = paper_row((paper_id, *values))
        _held[paper_id] = (version, row)
    return found


def forget_papers() -> None:
    _held.clear()


def load_picks(candidates: "QuerySet[Candidate]") -> list[Pick]:
    """The candidates, in the queryset's order, as picks (two queries)."""
    rows = list(candidates.values_list("id", "paper_id", "score", "reason"))
    papers = load_papers(row[1] for row in rows)
    return [
        Pick(id, paper_id, papers[paper_id], score, reason)
        for id, paper_id, score, reason in rows
        if paper_id in papers
    ]

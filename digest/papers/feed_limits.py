"""Bounds on what one feed entry may store, so that no feed can grow a page, an email or a row
without limit, nor send what the database refuses.

Every cap is far above the largest real value in the captures in ../shared/feeds (noted beside it:
arXiv API, RSS, OAI-PMH and metadata-snapshot records, Hugging Face days), so no real paper is cut.
Text over its cap is cut on a character boundary; a link, date or number out of range is dropped
or clamped; each cut is a note saying why, and the entry is counted as trimmed. An entry whose id
is over its cap is skipped: a cut id could merge two different entries.
"""

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.db.models import CharField, Model

from digest.models import Paper
from digest.papers.cleaning import cut_text

if TYPE_CHECKING:
    from digest.papers.feed_parsing import ParsedPaper


def column_length(model: type[Model], name: str) -> int:
    """The max_length of a text column of `model`."""
    field = model._meta.get_field(name)
    if not isinstance(field, CharField) or field.max_length is None:
        raise TypeError(f"{model.__name__}.{name} is not a text column with a max_length")
    return field.max_length


def _column_length(name: str) -> int:
    return column_length(Paper, name)


MAX_TITLE_CHARS = 1_000  # longest real: 223
MAX_ABSTRACT_CHARS = 10_000  # longest real: 2,387 (arXiv caps new abstracts at 1,920)
MAX_AUTHORS = 10_000  # longest real list: 706; ATLAS+CMS papers list about 5,100 names
MAX_AUTHOR_NAME_CHARS = 300  # longest real: 118 (with an affiliation)
MAX_CATEGORIES = 30  # most real: 9
MAX_CATEGORY_CHARS = 100  # longest real: 47 ("68T01 General topics in artificial intelligence")
MAX_NOTE_CHARS = 2_000  # journal reference and comment; longest real: 348
MAX_DOI_CHARS = _column_length("doi")  # 200; longest real: 55
MAX_PRIMARY_CATEGORY_CHARS = _column_length("primary_category")  # 40; longest real: 17
MAX_URL_CHARS = _column_length("url")  # 1,000, as the other link columns; longest real: 135
MAX_GUID_CHARS = _column_length("guid")  # 1,000; arXiv ids are 10 characters, blog links about 100
MAX_ORGANIZATION_CHARS = _column_length("organization")  # 200; longest real: 74
MAX_VERSION = 32_767  # Paper.version, a PositiveSmallIntegerField; the longest-revised papers reach v30s
MAX_COUNT = 2_147_483_647  # Paper.upvotes: PostgreSQL's integer (SQLite's is wider)
# Outside these, a date is taken as unknown. Before 1900 a conversion to a west-of-UTC zone can
# overflow Python's datetime; arXiv dates an announcement at midnight US Eastern of its day, hours
# before some fetches of it; later than that, a paper would look freshest (and top the archive) for years.
EARLIEST_DATE = datetime(1900, 1, 1, tzinfo=UTC)
FUTURE_DATE_TOLERANCE = timedelta(days=2)

# Paper fields each cut to a cap, with the name a note gives it.
_TEXT_CAPS = (
    ("title", "title", MAX_TITLE_CHARS),
    ("abstract", "abstract", MAX_ABSTRACT_CHARS),
    ("primary_category", "primary category", MAX_PRIMARY_CATEGORY_CHARS),
    ("doi", "doi", MAX_DOI_CHARS),
    ("journal_ref", "journal reference", MAX_NOTE_CHARS),
    ("comment", "comment", MAX_NOTE_CHARS),
    ("organization", "organisation", MAX_ORGANIZATION_CHARS),
)
_LIST_CAPS = (
    ("authors", "authors", MAX_AUTHORS, MAX_AUTHOR_NAME_CHARS),
    ("categories", "categories", MAX_CATEGORIES, MAX_CATEGORY_CHARS),
)


class SkipEntry(Exception):
    """An entry that must not be stored at all; the message completes "skipped N entries ..."."""


def checked_guid(guid: str) -> str:
    if len(guid) > MAX_GUID_CHARS:
        raise SkipEntry(f"with an id over {MAX_GUID_CHARS:,} characters")
    return guid


def limit_paper(paper: "ParsedPaper", notes: list[str]) -> None:
    """Cut, drop or clamp every field of `paper` that is over its cap, with a note for each."""
    for name, label, limit in _TEXT_CAPS:
        value = getattr(paper, name)
        if len(value) > limit:
            setattr(paper, name, cut_text(value, limit))
            notes.append(f"{label} cut to {limit:,} characters")
    for name, label, most, longest in _LIST_CAPS:
        values = getattr(paper, name)
        if len(values) > most:
            values = values[:most]
            notes.append(f"{label} cut to the first {most:,}")
        if values and max(map(len, values)) > longest:
            values = [cut_text(value, longest) for value in values]
            notes.append(f"{label} cut to {longest:,} characters each")
        setattr(paper, name, values)
    if paper.version is not None and not 1 <= paper.version <= MAX_VERSION:
        paper.version = None
        notes.append(f"version outside 1 to {MAX_VERSION:,} ignored")
    if paper.upvotes is not None and not 0 <= paper.upvotes <= MAX_COUNT:
        paper.upvotes = min(max(paper.upvotes, 0), MAX_COUNT)
        notes.append(f"upvotes clamped to 0 to {MAX_COUNT:,}")
    if paper.num_comments is not None and not 0 <= paper.num_comments <= MAX_COUNT:
        paper.num_comments = min(max(paper.num_comments, 0), MAX_COUNT)
        notes.append(f"comment count clamped to 0 to {MAX_COUNT:,}")
    for name in ("published", "updated"):
        value = getattr(paper, name)
        if value is not None and not EARLIEST_DATE <= value <= datetime.now(UTC) + FUTURE_DATE_TOLERANCE:
            setattr(paper, name, None)
            notes.append(f"{name} date out of range ({value.year}) ignored")


def checked_url(value: object, notes: list[str], label: str) -> str:
    """`value` if it is an http(s) address that fits its column, else "".

    Only http(s) is ever stored, so nothing from a feed becomes a javascript: or data: link. Ids
    that are no web address (urn:, tag:, relative paths: feedparser offers an Atom id as the link)
    are dropped quietly; a script link, or an http(s) one too long or malformed, with a note.
    """
    if not value:
        return ""
    text = value.strip() if isinstance(value, str) else ""
    if text and len(text) <= MAX_URL_CHARS and _is_http_url(text):
        return text
    scheme = text.partition(":")[0].strip().lower()
    if not isinstance(value, str) or scheme in ("http", "https") or scheme in _SCRIPT_SCHEMES:
        notes.append(f"{label} dropped: not an http(s) address of at most {MAX_URL_CHARS:,} characters")
    return ""


_SCRIPT_SCHEMES = frozenset({"javascript", "data", "vbscript"})
IMAGE_HOST = "huggingface.co"


def checked_image_url(value: object, notes: list[str], label: str) -> str:
    """`value` if it is an https address on Hugging Face's own hosts (huggingface.co and its
    subdomains, e.g. cdn-thumbnails.huggingface.co), else "" with a note.

    An image is fetched by the reader's mail client or browser when shown: a feed's choice of host
    would be a tracking pixel or worse, so only the host the feed's own site serves images from is kept.
    """
    url = checked_url(value, notes, label)
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    on_hf = host == IMAGE_HOST or host.endswith("." + IMAGE_HOST)
    if parts.scheme.lower() != "https" or not on_hf or port is not None or "@" in parts.netloc:
        notes.append(f"{label} dropped: not an https address on {IMAGE_HOST}")
        return ""
    return url


def _is_http_url(text: str) -> bool:
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return False
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    # A host, and no spaces, controls, surrogates or backslashes (browsers read a backslash as "/").
    return bool(host) and text.isprintable() and " " not in text and "\\" not in text


def json_count(value: object, notes: list[str], label: str) -> int | None:
    """A count from JSON as an int, or None when it is missing or not a number (noted).

    The range is limit_paper's to clamp; JSON's bool is no number here, and neither are NaN and
    the infinities Python's parser reads from NaN, Infinity and 1e400.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    notes.append(f"{label} not a number ignored")
    return None


def json_int(digits: str) -> int:
    """json.loads' parse_int: an integer of more than 18 digits is out of every range, so it is read
    as 10**18 (with its sign) for limit_paper to clamp, not converted (Python refuses past 4,300
    digits, which failed the whole document)."""
    if len(digits.lstrip("-")) <= 18:
        return int(digits)
    return -(10**18) if digits.startswith("-") else 10**18

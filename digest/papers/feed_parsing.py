"""Reading a fetched document into plain `ParsedPaper` values, whatever the source.

Sources: rss.arxiv.org (RSS 2.0 and Atom), arXiv's RSS 1.0 of before 2024, the arXiv API (Atom),
Hugging Face daily papers (JSON) and any other RSS/Atom feed (best effort). The quirks handled
here are listed, with the real captures that show them, in ../shared/feeds/SOURCES.md (the tests
read those captures); the RSS 1.0 format is covered by a fixture of our own, in tests/fixtures/.
"""

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import feedparser

from digest.models import Feed
from digest.papers.cleaning import clean_abstract, clean_line, clean_text, cut_text, parse_arxiv_id, split_authors
from digest.papers.feed_limits import (
    MAX_VERSION,
    SkipEntry,
    checked_guid,
    checked_image_url,
    checked_url,
    json_count,
    json_int,
    limit_paper,
)

Kind = Feed.Kind

ARXIV_ABS_URL = "https://arxiv.org/abs/{}"
ARXIV_PDF_URL = "https://arxiv.org/pdf/{}"
HF_PAPER_URL = "https://huggingface.co/papers/{}"
# Where a document that stops early still closes its root element, it was not cut off.
# FeedParserDict.get remaps keys (with warnings) on every call; entries store fields under their
# own names, so plain dict lookups read them for a fraction of the cost.
_get = dict.get
_CLOSING_ROOT = re.compile(rb"</(?:[\w-]+:)?(?:feed|rss|RDF)\s*>\s*$")
# feedparser's fallback parser raises on a numeric reference to a surrogate or past U+10FFFF,
# which would fail the whole document for one entry: such references become U+FFFD first.
_NUMERIC_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+))")
_REPLACEMENT_REFERENCE = b"&#xFFFD"
# feedparser (6.0.x) looks for an e-mail address in an RSS author, managingEditor, webMaster or
# dc:publisher with a regex that is quadratic in the length of a run of address characters: a
# 32 KB one costs a minute, a megabyte days. Runs longer than an address part can be (64, RFC 5321)
# are cut before it looks; they are in no real name.
MAX_ADDRESS_RUN = 64
_ADDRESS_RUN = re.compile(rf"(?<![A-Za-z0-9_.+-])[A-Za-z0-9_.+-]{{{MAX_ADDRESS_RUN + 1},}}")
# How much of an arXiv API error message is worth keeping.
MAX_ERROR_CHARS = 300
# arXiv's RSS 1.0 feeds (export.arxiv.org/rss/<archive>, until 2024) carry no category element
# and no version: both ride in the title, "Title. (arXiv:1805.08875v1 [hep-ex])", with
# " CROSS LISTED" or " UPDATED" after the category for a cross-list or a new version.
_OLD_ARXIV_TITLE = re.compile(
    r"\s*\(arXiv:(?P<id>[^\s()\[\]]+)\s+\[(?P<category>[^\s()\[\]]+)\](?:\s+(?P<note>CROSS LISTED|UPDATED))?\)\s*$"
)
# The announcement types of today's rss.arxiv.org (arxiv:announce_type) that the notes mean.
_OLD_ARXIV_NOTES = {None: "new", "CROSS LISTED": "cross", "UPDATED": "replace"}
# Exceptions a malformed entry can raise in a reader: it is skipped and counted, the others kept.
_DAMAGED_ENTRY = (TypeError, ValueError, AttributeError, LookupError, OverflowError)

_feedparser_sync_author_detail = feedparser.mixin._FeedParserMixin._sync_author_detail


def _sync_author_detail_in_linear_time(self: feedparser.mixin._FeedParserMixin, key: str = "author") -> None:
    context = self._get_context()
    value = context.get(key)
    if isinstance(value, str) and len(value) > MAX_ADDRESS_RUN:
        context[key] = _ADDRESS_RUN.sub(lambda run: run.group()[:MAX_ADDRESS_RUN], value)
    _feedparser_sync_author_detail(self, key)


feedparser.mixin._FeedParserMixin._sync_author_detail = _sync_author_detail_in_linear_time


@dataclass
class ParsedPaper:
    guid: str
    title: str
    arxiv_id: str | None = None
    version: int | None = None
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    primary_category: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    url: str = ""
    pdf_url: str = ""
    code_url: str = ""
    project_url: str = ""
    doi: str = ""
    journal_ref: str = ""
    comment: str = ""
    upvotes: int | None = None
    num_comments: int | None = None
    organization: str = ""
    thumbnail_url: str = ""
    announce_type: str = ""


@dataclass
class ParsedFeed:
    kind: str
    papers: list[ParsedPaper] = field(default_factory=list)
    skipped: int = 0
    # Entries past the document's cap (`max_entries`): not read, counted in `skipped` too.
    over_cap: int = 0
    # Kept entries with a field cut, dropped or clamped to feed_limits' caps.
    trimmed: int = 0
    problems: list[str] = field(default_factory=list)
    error: str = ""
    title: str = ""


def parse_document(
    body: bytes, kind: str = Kind.AUTO, content_type: str = "", *, max_entries: int | None = None
) -> ParsedFeed:
    """Papers from a feed document; damaged entries are skipped and counted, never fatal.

    `max_entries`: only the document's first that many entries are read; the rest are counted
    in `over_cap` (and `skipped`) with a problem saying so.
    """
    if not body or not body.strip():
        return ParsedFeed(kind=kind, error="empty document")
    if kind == Kind.HF_DAILY or (kind == Kind.AUTO and body.lstrip()[:1] in (b"[", b"{")):
        return _parse_hf_daily(body, max_entries)
    if b"&#" in body:
        body = _NUMERIC_REFERENCE.sub(_valid_reference, body)
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.version and not parsed.entries:
        return ParsedFeed(kind=kind, error=_not_a_feed_message(body, content_type, parsed))
    if kind == Kind.AUTO:
        kind = detect_feed_kind(parsed)
    result = ParsedFeed(kind=kind, title=clean_text(parsed.feed.get("title")))
    entries = list(parsed.entries)
    cut_off = 0
    if parsed.bozo:
        result.problems.append(f"malformed document: {parsed.bozo_exception}")
        if entries and not _CLOSING_ROOT.search(body.rstrip()):
            # A cut-off document ends inside its last entry: what feedparser salvaged of it
            # is partial, so it must not overwrite a complete copy.
            entries.pop()
            cut_off = 1
            result.problems.append(
                f"document is truncated: kept {len(entries)} complete entries, skipped the cut-off one"
            )
    if kind == Kind.ARXIV_API and _is_arxiv_api_error(entries):
        message = cut_text(clean_text(entries[0].get("summary")), MAX_ERROR_CHARS)
        result.error = f"arXiv API error: {message or 'unknown'}"
        return result
    if parsed.version == "rss10":
        _date_by_the_channel(entries, parsed.feed)
    read = _ENTRY_READERS.get(kind, _read_generic_entry)
    _collect(result, entries, read, ("entry", "entries"), max_entries)
    result.skipped += cut_off
    return result


def _date_by_the_channel(entries: list, channel: Any) -> None:
    """RSS 1.0 items often carry no date (arXiv's never did): the channel's dc:date, the day of
    the announcement, dates them."""
    announced = _get(channel, "updated_parsed")
    for entry in entries:
        if announced and not _get(entry, "published_parsed") and not _get(entry, "updated_parsed"):
            dict.__setitem__(entry, "published_parsed", announced)


def _valid_reference(match: re.Match[bytes]) -> bytes:
    hex_digits, digits = match.groups()
    significant = (hex_digits or digits).lstrip(b"0") or b"0"
    if len(significant) > 7:
        return _REPLACEMENT_REFERENCE
    code = int(significant, 16 if hex_digits else 10)
    return _REPLACEMENT_REFERENCE if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else match.group()


def detect_feed_kind(parsed: feedparser.FeedParserDict) -> str:
    first_id = parsed.entries[0].get("id", "") if parsed.entries else ""
    feed_link = parsed.feed.get("link", "") or parsed.feed.get("id", "")
    if first_id.startswith("oai:arXiv.org:") or "rss.arxiv.org" in feed_link:
        return Kind.ARXIV_RSS
    if parsed.version == "rss10" and parse_arxiv_id(first_id) and _old_arxiv_title(parsed.entries[0]):
        return Kind.ARXIV_RSS
    if "opensearch_totalresults" in parsed.feed and (
        "arxiv.org" in feed_link or "arxiv.org/abs/" in first_id or "arxiv.org/api" in first_id
    ):
        return Kind.ARXIV_API
    return Kind.RSS


def _not_a_feed_message(body: bytes, content_type: str, parsed: feedparser.FeedParserDict) -> str:
    head = body.lstrip()[:512].lower()
    if b"<html" in head or b"<!doctype html" in head or "html" in content_type:
        return "not a feed: got an HTML page"
    if parsed.bozo:
        return f"not a feed: {parsed.bozo_exception}"
    return "not a feed: no RSS, Atom or JSON papers list found"


def _is_arxiv_api_error(entries: list) -> bool:
    return (
        len(entries) == 1
        and entries[0].get("title", "").strip() == "Error"
        and "/api/errors" in entries[0].get("id", "")
    )


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        year, month, day, hour, minute, second = value[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _entry_dates(entry: Any) -> tuple[datetime | None, datetime | None]:
    published = _struct_to_datetime(_get(entry, "published_parsed"))
    updated = _struct_to_datetime(_get(entry, "updated_parsed"))
    return published or updated, updated or published


def _tag_terms(entry: Any) -> list[str]:
    terms = [clean_text(_get(tag, "term")) for tag in _get(entry, "tags") or []]
    return list(dict.fromkeys(term for term in terms if term))


def _entry_summary(entry: Any) -> str:
    summary = _get(entry, "summary", "")
    content = _get(entry, "content")
    if not summary and content:
        summary = _get(content[0], "value", "")
    return summary


def _arxiv_urls(arxiv_id: str, version: int | None) -> tuple[str, str]:
    versioned = f"{arxiv_id}v{version}" if version and version <= MAX_VERSION else arxiv_id
    return ARXIV_ABS_URL.format(arxiv_id), ARXIV_PDF_URL.format(versioned)


def _old_arxiv_title(entry: Any) -> re.Match[str] | None:
    return _OLD_ARXIV_TITLE.search(clean_text(_get(entry, "title")))


def _read_arxiv_rss_entry(entry: Any, notes: list[str]) -> ParsedPaper | None:
    title = clean_text(_get(entry, "title"))
    identifier = parse_arxiv_id(_get(entry, "id")) or parse_arxiv_id(_get(entry, "link"))
    if not title or identifier is None:
        return _read_generic_entry(entry, notes)
    categories = _tag_terms(entry)
    announce_type = clean_text(_get(entry, "arxiv_announce_type"))
    old_format = _OLD_ARXIV_TITLE.search(title)
    if old_format and (in_title := parse_arxiv_id(old_format["id"])) and in_title.id == identifier.id:
        # arXiv put ". " before the suffix; a title's own full stop is rare ("et al.", "vs.").
        title = title[: old_format.start()].strip().removesuffix(".")
        identifier = in_title  # the link has no version; the title does
        categories = categories or [old_format["category"]]
        announce_type = announce_type or _OLD_ARXIV_NOTES[old_format["note"]]
    authors: list[str] = []
    for author in _get(entry, "authors") or []:
        authors.extend(split_authors(_get(author, "name")))
    published, updated = _entry_dates(entry)
    url, pdf_url = _arxiv_urls(identifier.id, identifier.version)
    return ParsedPaper(
        guid=identifier.id,
        arxiv_id=identifier.id,
        version=identifier.version,
        title=title,
        abstract=clean_abstract(_entry_summary(entry)),
        authors=authors,
        categories=categories,
        # rss.arxiv.org lists the primary category first, also for cross-lists.
        primary_category=categories[0] if categories else "",
        published=published,
        updated=updated,
        url=url,
        pdf_url=pdf_url,
        announce_type=announce_type,
    )


def _read_arxiv_api_entry(entry: Any, notes: list[str]) -> ParsedPaper | None:
    title = clean_text(_get(entry, "title"))
    identifier = parse_arxiv_id(_get(entry, "id"))
    if not title or identifier is None:
        return _read_generic_entry(entry, notes)
    url, pdf_url = _arxiv_urls(identifier.id, identifier.version)
    for link in _get(entry, "links") or []:
        if _get(link, "title") == "pdf" or _get(link, "type") == "application/pdf":
            pdf_url = checked_url(_get(link, "href"), notes, "pdf link") or pdf_url
    primary = _get(entry, "arxiv_primary_category") or {}
    categories = _tag_terms(entry)
    published, updated = _entry_dates(entry)
    return ParsedPaper(
        guid=identifier.id,
        arxiv_id=identifier.id,
        version=identifier.version,
        title=title,
        abstract=clean_abstract(_entry_summary(entry)),
        # `entry.author` is the last author here: only `entry.authors` has them all, in order.
        authors=[name for a in _get(entry, "authors") or [] if (name := clean_text(_get(a, "name")))],
        categories=categories,
        primary_category=clean_text(_get(primary, "term")) or (categories[0] if categories else ""),
        published=published,
        updated=updated,
        url=url,
        pdf_url=pdf_url,
        doi=clean_text(_get(entry, "arxiv_doi")),
        journal_ref=clean_text(_get(entry, "arxiv_journal_ref")),
        comment=clean_text(_get(entry, "arxiv_comment")),
    )


def _read_generic_entry(entry: Any, notes: list[str]) -> ParsedPaper | None:
    title = clean_text(_get(entry, "title"))
    link = clean_line(_get(entry, "link"))
    guid = clean_line(_get(entry, "id")) or link
    if not title or not guid:
        return None
    identifier = parse_arxiv_id(guid) or parse_arxiv_id(link)
    authors: list[str] = []
    for author in _get(entry, "authors") or []:
        authors.extend(split_authors(_get(author, "name")))
    published, updated = _entry_dates(entry)
    return ParsedPaper(
        guid=identifier.id if identifier else checked_guid(guid),
        arxiv_id=identifier.id if identifier else None,
        version=identifier.version if identifier else None,
        title=title,
        abstract=clean_abstract(_entry_summary(entry)),
        authors=authors,
        categories=_tag_terms(entry),
        published=published,
        updated=updated,
        # An arXiv paper's page is arXiv's, whatever page the entry links to.
        url=ARXIV_ABS_URL.format(identifier.id) if identifier else checked_url(link, notes, "link"),
    )


_ENTRY_READERS: dict[str, Callable[[Any, list[str]], ParsedPaper | None]] = {
    Kind.ARXIV_RSS: _read_arxiv_rss_entry,
    Kind.ARXIV_API: _read_arxiv_api_entry,
}


def _iso_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_hf_daily(body: bytes, max_entries: int | None) -> ParsedFeed:
    result = ParsedFeed(kind=Kind.HF_DAILY, title="Hugging Face daily papers")
    try:
        data = json.loads(body, parse_int=json_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        result.error = f"not a feed: invalid JSON ({cut_text(str(exc), MAX_ERROR_CHARS)})"
        return result
    if isinstance(data, dict):
        data = data.get("papers", data.get("items"))
    if not isinstance(data, list):
        result.error = "not a feed: expected a JSON list of papers"
        return result
    if data and not any(isinstance(item, dict) for item in data):
        result.error = "not a feed: the JSON list holds no paper objects"
        return result
    _collect(result, data, _read_hf_item, ("item", "items"), max_entries)
    return result


Reader = Callable[[Any, list[str]], ParsedPaper | None]


def _collect(result: ParsedFeed, items: Sequence, read: Reader, noun: tuple[str, str], max_entries: int | None) -> None:
    """Read each of the first `max_entries` items into a paper held to feed_limits' caps.

    An item without an id or a title, with an id over its cap, or too damaged to read is counted
    and not kept; one with a field cut or dropped is kept and counted; the problems say why. Items
    past `max_entries` are not read: each would cost a worker its sentence vectors.
    """
    if max_entries is not None and len(items) > max_entries:
        result.over_cap = len(items) - max_entries
        result.skipped += result.over_cap
        result.problems.append(
            f"{len(items):,} {noun[1]}, more than FEED_MAX_ENTRIES ({max_entries:,}): "
            f"read the first {max_entries:,}, skipped the other {result.over_cap:,}"
        )
        items = items[:max_entries]
    skipped: Counter[str] = Counter()
    trimmed: Counter[str] = Counter()
    notes: list[str] = []
    for item in items:
        notes.clear()
        try:
            paper = read(item, notes)
        except SkipEntry as exc:
            skipped[str(exc)] += 1
            continue
        except _DAMAGED_ENTRY as exc:
            skipped[f"that could not be read ({type(exc).__name__})"] += 1
            continue
        if paper is None:
            skipped["without an id or a title"] += 1
            continue
        limit_paper(paper, notes)
        result.papers.append(paper)
        if notes:
            result.trimmed += 1
            trimmed.update(set(notes))
    for reason, count in skipped.items():
        result.skipped += count
        result.problems.append(f"skipped {count} {noun[count != 1]} {reason}")
    for reason, count in trimmed.items():
        result.problems.append(f"trimmed {count} {noun[count != 1]}: {reason}")


def _read_hf_item(item: Any, notes: list[str]) -> ParsedPaper | None:
    if not isinstance(item, dict):
        return None
    # /api/daily_papers wraps each paper; /api/papers does not.
    wrapped = item.get("paper")
    paper = wrapped if isinstance(wrapped, dict) else item
    title = clean_text(paper.get("title") or item.get("title"))
    raw_id = paper.get("id")
    raw_id = clean_line(str(raw_id) if isinstance(raw_id, int | float) else raw_id)
    if not title or not raw_id:
        return None
    identifier = parse_arxiv_id(raw_id)
    authors = [
        name
        for author in _json_list(paper.get("authors"))
        if isinstance(author, dict) and (name := clean_text(author.get("name")))
    ]
    arxiv_id = identifier.id if identifier else None
    if arxiv_id:
        url = ARXIV_ABS_URL.format(arxiv_id)
    else:
        url = checked_url(HF_PAPER_URL.format(quote(raw_id, safe="")), notes, "link")
    return ParsedPaper(
        guid=arxiv_id or checked_guid(f"hf:{raw_id}"),
        arxiv_id=arxiv_id,
        version=identifier.version if identifier else None,
        title=title,
        abstract=clean_abstract(paper.get("summary") or item.get("summary")),
        authors=authors,
        published=_iso_datetime(paper.get("publishedAt")),
        url=url,
        pdf_url=ARXIV_PDF_URL.format(arxiv_id) if arxiv_id else "",
        code_url=checked_url(paper.get("githubRepo"), notes, "code link"),
        project_url=checked_url(paper.get("projectPage"), notes, "project page"),
        upvotes=json_count(paper.get("upvotes"), notes, "upvotes"),
        num_comments=json_count(item.get("numComments"), notes, "comment count"),
        organization=_hf_organization(item.get("organization") or paper.get("organization")),
        thumbnail_url=checked_image_url(item.get("thumbnail"), notes, "thumbnail"),
    )


def _hf_organization(value: Any) -> str:
    """The paper's organisation as the page names it: {"name": "Oxford", "fullname": "University
    of Oxford", ...} reads "University of Oxford". (Not `submitterOrganization`: that is whoever
    posted the paper, not whose it is.)"""
    if not isinstance(value, dict):
        return ""
    return clean_text(value.get("fullname")) or clean_text(value.get("name"))


def _json_list(value: Any) -> list:
    return value if isinstance(value, list) else []

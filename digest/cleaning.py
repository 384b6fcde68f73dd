"""Turning what feeds send into plain text: titles, abstracts, author names and arXiv ids.

Everything stored comes out of here as plain text (no markup, no entities), so templates can
escape it once and nothing from a feed is ever rendered as HTML.
"""

import html
import re
from typing import NamedTuple

import nh3

# Rounds of strip-and-unescape before giving up: each productive round shortens the text, and
# real feeds need at most two (markup escaped once inside an RSS description).
MAX_CLEANING_ROUNDS = 10

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A `<` that does not open something tag-like is text (`p<0.05`, `x < y`): escape it so the
# HTML parser keeps it instead of reading the rest of the sentence as a tag.
_LONE_LESS_THAN = re.compile(r"<(?!/|[A-Za-z][^<>]*>|!|\?)")
_ANNOUNCE_PREFIX = re.compile(
    r"^\s*arXiv:\S+\s+Announce\s+Type:\s*[\w-]+\s*(?:Abstract:\s*)?", re.IGNORECASE
)
_AUTHOR_SEPARATOR = re.compile(r"\s*[,;]\s*|\s+and\s+|\s*&\s*", re.IGNORECASE)
_NAME_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}

_NEW_STYLE_ID = r"(?P<new>\d{4}\.\d{4,5})"
_OLD_STYLE_ID = r"(?P<old>[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})"
_ARXIV_ID = re.compile(
    r"^\s*(?:oai:arXiv\.org:|arXiv:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/)?"
    rf"(?:{_NEW_STYLE_ID}|{_OLD_STYLE_ID})(?:v(?P<version>\d+))?(?:\.pdf)?/?\s*$",
    re.IGNORECASE,
)


class ArxivId(NamedTuple):
    id: str
    version: int | None


def fold_whitespace(text: str) -> str:
    return " ".join(text.split())


def clean_text(value: str | None) -> str:
    """Plain text from a feed field: tags dropped, entities decoded, whitespace folded."""
    if not value:
        return ""
    text = _CONTROL_CHARS.sub(" ", value)
    if "<" not in text:
        # No tag to strip: decoding is all, unless an entity decodes to markup (`&lt;b&gt;`).
        decoded = text
        for _ in range(MAX_CLEANING_ROUNDS):
            if "&" not in decoded or (undone := html.unescape(decoded)) == decoded:
                break
            decoded = undone
        if "<" not in decoded:
            return fold_whitespace(_CONTROL_CHARS.sub(" ", decoded))
    # Feeds escape markup to different depths (`&lt;b&gt;` inside an RSS description is a
    # tag once decoded), so strip and decode until nothing changes.
    for _ in range(MAX_CLEANING_ROUNDS):
        stripped = nh3.clean(_LONE_LESS_THAN.sub("&lt;", text), tags=set(), attributes={})
        cleaned = fold_whitespace(html.unescape(stripped))
        cleaned = _CONTROL_CHARS.sub(" ", cleaned)
        if cleaned == text:
            break
        text = cleaned
    return text


def clean_abstract(value: str | None) -> str:
    """An abstract as plain text, without rss.arxiv.org's `arXiv:… Announce Type: … Abstract:`."""
    return _ANNOUNCE_PREFIX.sub("", clean_text(value), count=1)


def split_authors(value: str | None) -> list[str]:
    """Names from one joined string: rss.arxiv.org sends every author of a paper as one name."""
    text = clean_text(value)
    if not text:
        return []
    names: list[str] = []
    for piece in _AUTHOR_SEPARATOR.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if names and piece.lower() in _NAME_SUFFIXES:
            names[-1] = f"{names[-1]}, {piece}"
        else:
            names.append(piece)
    return names


def parse_arxiv_id(value: str | None) -> ArxivId | None:
    """The canonical id and version from any form arXiv uses, or None if it is not one."""
    if not value:
        return None
    match = _ARXIV_ID.match(value)
    if not match:
        return None
    version = match.group("version")
    return ArxivId(match.group("new") or match.group("old"), int(version) if version else None)

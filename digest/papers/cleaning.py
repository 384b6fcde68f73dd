"""Turning what feeds send into plain text: titles, abstracts, author names and arXiv ids.

Everything stored comes out of here as plain text (no markup, no entities), so templates can
escape it once and nothing from a feed is ever rendered as HTML.
"""

import html
import re
import unicodedata

import nh3

# The id grammar lives with the subscribers' input, which parses ids too (subscribers/arxiv_ids.py).
from subscribers.arxiv_ids import OVERLONG_VERSION, ArxivId, parse_arxiv_id  # noqa: F401 - re-exported

# Rounds of strip-and-unescape before giving up: each productive round shortens the text, and
# real feeds need at most two (markup escaped once inside an RSS description).
MAX_CLEANING_ROUNDS = 10

# Control characters, and lone surrogates (JSON can send them): PostgreSQL refuses NUL in text,
# and no database driver can encode a surrogate.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# A `<` that does not open something tag-like is text (`p<0.05`, `x < y`): escape it so the
# HTML parser keeps it instead of reading the rest of the sentence as a tag.
_LONE_LESS_THAN = re.compile(r"<(?!/|[A-Za-z][^<>]*>|!|\?)")
_ANNOUNCE_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce\s+Type:\s*[\w-]+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_AUTHOR_SEPARATOR = re.compile(r"\s*[,;]\s*|\s+and\s+|\s*&\s*", re.IGNORECASE)
_NAME_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}

ELLIPSIS = "\u2026"


def fold_whitespace(text: str) -> str:
    return " ".join(text.split())


def clean_text(value: object) -> str:
    """Plain text from a feed field: tags dropped, entities decoded, whitespace folded.

    Anything but a string (a JSON number, list or object where text belongs) is no text.
    """
    if not value or not isinstance(value, str):
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


def clean_line(value: object) -> str:
    """One line as sent (an entry id, a link, a message) minus what no column may hold: control
    characters and surrogates; whitespace folded. No markup is removed: it is no text to display."""
    if not value or not isinstance(value, str):
        return ""
    return fold_whitespace(_CONTROL_CHARS.sub(" ", value))


def cut_text(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, ending in an ellipsis when cut.

    Cleaned text holds no entities to break, and a Python string no surrogate pairs; the cut also
    keeps a combining accent with its letter and drops a dangling space.
    """
    if len(text) <= limit:
        return text
    end = max(limit - 1, 0)
    while end > 0 and unicodedata.combining(text[end]):
        end -= 1
    return text[:end].rstrip() + ELLIPSIS


def clean_abstract(value: object) -> str:
    """An abstract as plain text, without rss.arxiv.org's `arXiv:… Announce Type: … Abstract:`."""
    return _ANNOUNCE_PREFIX.sub("", clean_text(value), count=1)


def split_authors(value: object) -> list[str]:
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

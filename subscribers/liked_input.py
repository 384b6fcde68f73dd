"""What a subscriber gives us for their "papers I liked" list: pasted arXiv ids or titles, or a
BibTeX file, read into a `LikedInput` of canonical ids and titles.

Everything is read, and everything checked, before anything is stored: input with one line we
cannot read is refused whole, with a message that names the line, and nothing of it is saved.
Bounded: a paste or file names at most MAX_PAPERS_PER_INPUT papers, a file is at most
MAX_BIBTEX_BYTES, and every step is linear in the size of the input.
"""

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from subscribers.arxiv_ids import OVERLONG_VERSION, parse_arxiv_id

MAX_PAPERS_PER_INPUT = 100
MAX_TEXT_CHARS = 20_000
MAX_BIBTEX_BYTES = 1_000_000
MAX_TITLE_CHARS = 300
MIN_TITLE_WORDS = 2
# How much of a refused line the message quotes.
QUOTE_CHARS = 60

# Something that was meant to be an id or a link, so it must read as one rather than as a title.
_LOOKS_LIKE_ID = re.compile(r"^(?:arxiv:|oai:|https?://|www\.|\d{4}\.\d|[a-z\-]+(?:\.[a-z]{2})?/\d)", re.IGNORECASE)
_LIST_MARKER = re.compile(r"^(?:[-*\u2022]|\d{1,3}[.)])\s+")
_SEPARATORS = re.compile(r"[\s,;]+")
_EMBEDDED_ID = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf|html)/|arxiv[:\s]\s*|10\.48550/arxiv\.)"
    r"(\d{4}\.\d{4,5}(?:v\d{1,9})?|[a-z][a-z\-]{0,19}(?:\.[a-z]{2})?/\d{7}(?:v\d{1,9})?)",
    re.IGNORECASE,
)
_ENTRY_START = re.compile(r"@\s*([A-Za-z]+)\s*[{(]")
_FIELD_NAME = re.compile(r"\s*([A-Za-z][\w\-:.]*)\s*=\s*")
_BARE_VALUE = re.compile(r"[^\s,#}){]+")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+\s*|\\.")
BIBTEX_NON_ENTRIES = frozenset({"comment", "string", "preamble"})


BIBTEX_TOO_LARGE = f"That file is larger than {MAX_BIBTEX_BYTES // 1_000_000} MB. Nothing was saved."


class LikedInputError(ValueError):
    """Input refused whole; the message is written for the subscriber."""


@dataclass(frozen=True)
class LikedInput:
    arxiv_ids: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.arxiv_ids) + len(self.titles)

    def to_data(self) -> dict:
        """JSON-ready, for a task message."""
        return {"arxiv_ids": list(self.arxiv_ids), "titles": list(self.titles)}

    @classmethod
    def from_data(cls, data: dict) -> "LikedInput":
        return cls(arxiv_ids=tuple(data.get("arxiv_ids", ())), titles=tuple(data.get("titles", ())))


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return f"“{text[:QUOTE_CHARS]}…”" if len(text) > QUOTE_CHARS else f"“{text}”"


def _canonical_id(value: str) -> str | None:
    found = parse_arxiv_id(value)
    if found is None or found.version == OVERLONG_VERSION or found.version == 0:
        return None
    return found.id


def normalize_title(title: str) -> str:
    """A title as compared: case and spacing ignored, so a pasted title finds the stored one."""
    return " ".join(title.split()).casefold()


def _title(text: str) -> str | None:
    title = " ".join(text.split()).strip(" .")
    words = [word for word in title.split() if any(char.isalpha() for char in word)]
    if len(words) < MIN_TITLE_WORDS or len(title) > MAX_TITLE_CHARS:
        return None
    return title


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char).startswith("C") and char not in "\r\n\t" for char in text)


def _collected(ids: list[str], titles: list[str]) -> LikedInput:
    found = LikedInput(arxiv_ids=tuple(dict.fromkeys(ids)), titles=tuple(dict.fromkeys(titles)))
    if len(found) > MAX_PAPERS_PER_INPUT:
        raise LikedInputError(
            f"That names {len(found)} papers; please give at most {MAX_PAPERS_PER_INPUT} at a time. Nothing was saved."
        )
    return found


def parse_liked_text(text: str) -> LikedInput:
    """Pasted text: one paper per line, an arXiv id (any form, with or without version or link) or
    an exact title; several ids may share a line, separated by spaces or commas."""
    if len(text) > MAX_TEXT_CHARS:
        raise LikedInputError(f"That is more than {MAX_TEXT_CHARS:,} characters. Nothing was saved.")
    if _has_control_characters(text):
        raise LikedInputError("Please paste plain text: arXiv ids or titles, one per line. Nothing was saved.")
    ids: list[str] = []
    titles: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _LIST_MARKER.sub("", raw.strip())
        if not line:
            continue
        pieces = [piece for piece in _SEPARATORS.split(line) if piece]
        found = [_canonical_id(piece) for piece in pieces]
        if all(found):
            ids.extend(arxiv_id for arxiv_id in found if arxiv_id)
        elif _LOOKS_LIKE_ID.match(line):
            raise LikedInputError(
                f"Line {number}, {_quote(line)}, is not an arXiv id we can read "
                "(like 2410.05254, hep-th/9901001 or https://arxiv.org/abs/2410.05254). Nothing was saved."
            )
        elif (title := _title(line)) is not None:
            titles.append(title)
        else:
            raise LikedInputError(
                f"Line {number}, {_quote(line)}, is neither an arXiv id nor a paper's full title. Nothing was saved."
            )
        if len(ids) + len(titles) > MAX_PAPERS_PER_INPUT:
            raise LikedInputError(f"Please give at most {MAX_PAPERS_PER_INPUT} papers at a time. Nothing was saved.")
    return _collected(ids, titles)


def parse_bibtex(data: bytes) -> LikedInput:
    """A BibTeX file: each entry's arXiv id (eprint, arxivid, an arXiv URL, DOI or journal field),
    else its title."""
    if len(data) > MAX_BIBTEX_BYTES:
        raise LikedInputError(BIBTEX_TOO_LARGE)
    if b"\x00" in data:
        raise LikedInputError("That file is not a BibTeX file (it holds binary data). Nothing was saved.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if _has_control_characters(text.replace("\f", "")):
        raise LikedInputError("That file is not a BibTeX file (it holds binary data). Nothing was saved.")
    ids: list[str] = []
    titles: list[str] = []
    entries = unusable = 0
    for kind, fields in _bibtex_entries(text):
        if kind in BIBTEX_NON_ENTRIES:
            continue
        entries += 1
        # Counted before reading the entry: a file of a million empty entries stops here at once.
        if entries > MAX_PAPERS_PER_INPUT:
            raise LikedInputError(
                f"That file holds more than {MAX_PAPERS_PER_INPUT} papers; please export at most "
                f"{MAX_PAPERS_PER_INPUT} at a time. Nothing was saved."
            )
        arxiv_id = _entry_arxiv_id(fields)
        title = _title(_plain(fields.get("title", "")))
        if arxiv_id:
            ids.append(arxiv_id)
        elif title:
            titles.append(title)
        else:
            unusable += 1
    if not entries:
        raise LikedInputError("We found no BibTeX entries (like @article{…}) in that file. Nothing was saved.")
    if unusable:
        raise LikedInputError(
            f"{unusable} of the file's {entries} entries have neither an arXiv id nor a title. Nothing was saved."
        )
    return _collected(ids, titles)


def _entry_arxiv_id(fields: dict[str, str]) -> str | None:
    prefix = fields.get("archiveprefix", fields.get("eprinttype", "")).strip().casefold()
    for name in ("eprint", "arxivid", "arxiv"):
        value = fields.get(name, "").strip()
        if value and (name != "eprint" or prefix in ("", "arxiv")) and (found := _canonical_id(value)):
            return found
    for name in ("url", "doi", "journal", "note", "howpublished", "eprint"):
        embedded = _EMBEDDED_ID.search(fields.get(name, ""))
        if embedded and (found := _canonical_id(embedded.group(1))):
            return found
    return None


def _plain(value: str) -> str:
    """A BibTeX value as text: braces and LaTeX commands dropped (`{\\"o}` becomes `o`)."""
    return " ".join(_LATEX_COMMAND.sub("", value).replace("{", "").replace("}", "").split())


def _bibtex_entries(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(entry type, {field name: raw value}) for each entry; one pass, no backtracking."""
    position = 0
    while (start := _ENTRY_START.search(text, position)) is not None:
        kind = start.group(1).casefold()
        closing = "}" if text[start.end() - 1] == "{" else ")"
        position = start.end()
        if kind in BIBTEX_NON_ENTRIES:
            yield kind, {}
            continue
        comma = text.find(",", position)
        if comma < 0:
            return
        position = comma + 1
        fields: dict[str, str] = {}
        while True:
            name = _FIELD_NAME.match(text, position)
            if name is None:
                break
            value, position = _bibtex_value(text, name.end())
            fields.setdefault(name.group(1).casefold(), value)
            while position < len(text) and text[position] in " \t\r\n":
                position += 1
            if position < len(text) and text[position] == ",":
                position += 1
                continue
            break
        if position < len(text) and text[position] == closing:
            position += 1
        yield kind, fields


def _bibtex_value(text: str, position: int) -> tuple[str, int]:
    """One field value (`{...}`, `"..."`, a number or macro, joined by `#`) and where it ends."""
    parts = []
    while position < len(text):
        char = text[position]
        if char == "{":
            end = _balanced_end(text, position)
            parts.append(text[position + 1 : end - 1])
            position = end
        elif char == '"':
            end = position + 1
            depth = 0
            while end < len(text) and (text[end] != '"' or depth > 0):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            parts.append(text[position + 1 : end])
            position = end + 1
        else:
            word = _BARE_VALUE.match(text, position)
            if word is None:
                break
            parts.append(word.group())
            position = word.end()
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position < len(text) and text[position] == "#":
            position += 1
            while position < len(text) and text[position] in " \t\r\n":
                position += 1
            continue
        break
    return "".join(parts), position


def _balanced_end(text: str, start: int) -> int:
    depth = 0
    for position in range(start, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return position + 1
    return len(text)

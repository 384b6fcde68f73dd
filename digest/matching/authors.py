"""Author names compared the way a reader would: "Y. LeCun" is "Yann LeCun" is "LeCun, Yann".

A name is reduced to its family name (accents folded, case and spacing ignored, particles such as
"van" or "le" kept both with and without) and its given names, where an initial is compatible with
any name it starts.
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from subscribers.keywords import fold

# Letters NFKD does not decompose into an ASCII base.
_EXTRA_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ß": "ss",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ı": "i",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
    }
)
PARTICLES = frozenset("van von der den de del della dei di da du dos das le la ter ten st zu af".split())
SUFFIXES = frozenset("jr sr ii iii iv phd".split())
_PART_RE = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class AuthorName:
    display: str = field(compare=False)  # "Yann LeCun" and "yann lecun" are one followed author
    family: str  # with particles, squashed: "lecun", "vanbeethoven"
    core: str  # without particles: "cun" for "Le Cun", "beethoven"
    given: tuple[str, ...]  # lower case; an initial is one letter


def _lower(text: str) -> str:
    return fold(text.lower()).translate(_EXTRA_FOLD)


def _given_names(text: str, shouting: bool) -> list[str]:
    names: list[str] = []
    for chunk in text.replace(".", ". ").split():
        letters = _PART_RE.findall(chunk)
        # "JP" in "JP Sartre" is two initials; "Jo" is a name, and so is "JO" in "JO SMITH".
        if len(letters) == 1 and chunk.isupper() and not shouting and 2 <= len(letters[0]) <= 3:
            names.extend(_lower(letters[0]))
        else:
            names.extend(_lower(part) for part in letters)
    return [name for name in names if name not in SUFFIXES]


@lru_cache(maxsize=100_000)
def parse_author(name: str) -> AuthorName | None:
    text = fold(name).translate(_EXTRA_FOLD).strip()
    shouting = text.isupper()
    if "," in text:
        family_part, given_part = text.split(",", 1)
        if given_part.strip(" .").lower() in SUFFIXES:
            family_part, given_part = text.replace(",", " "), ""
        else:
            family_tokens = family_part.split()
            given = _given_names(given_part, shouting)
            return _make(name, family_tokens, given)
    tokens = [token for token in text.split() if token.strip(".,").lower() not in SUFFIXES]
    if not tokens:
        return None
    start = len(tokens) - 1
    while start > 1 and tokens[start - 1].lower() in PARTICLES:
        start -= 1
    return _make(name, tokens[start:], _given_names(" ".join(tokens[:start]), shouting))


def _make(display: str, family_tokens: Sequence[str], given: list[str]) -> AuthorName | None:
    parts = [_lower(part) for token in family_tokens for part in _PART_RE.findall(token)]
    if not parts:
        return None
    core_parts = [part for part in parts if part not in PARTICLES] or parts
    # "Le Cun" and "LeCun" are the same family name; so are "Smith-Jones" and "Smith Jones".
    return AuthorName(
        display=" ".join(display.split()), family="".join(parts), core="".join(core_parts), given=tuple(given)
    )


def given_names_agree(left: Sequence[str], right: Sequence[str]) -> bool:
    for a, b in zip(left, right, strict=False):
        if len(a) == 1 or len(b) == 1:
            if a[0] != b[0]:
                return False
        elif a != b:
            return False
    return True


def same_author(left: AuthorName, right: AuthorName) -> bool:
    if left.family != right.family and left.core != right.core:
        return False
    return given_names_agree(left.given, right.given)


class AuthorIndex:
    """The authors of a batch of papers, found by family name without scanning every paper."""

    def __init__(self, papers_authors: Iterable[Sequence[str]]):
        self._by_family: dict[str, list[tuple[int, AuthorName]]] = defaultdict(list)
        for position, authors in enumerate(papers_authors):
            for raw in authors:
                parsed = parse_author(raw)
                if parsed is None:
                    continue
                self._by_family[parsed.family].append((position, parsed))
                if parsed.core != parsed.family:
                    self._by_family[parsed.core].append((position, parsed))

    def papers_by(self, followed: AuthorName) -> dict[int, str]:
        """Paper positions written by the followed author, with the name as the paper spells it."""
        found: dict[int, str] = {}
        for key in {followed.family, followed.core}:
            for position, written in self._by_family.get(key, ()):
                if position not in found and same_author(followed, written):
                    found[position] = written.display
        return found

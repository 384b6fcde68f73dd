"""Keyword syntax and the text handling shared by every matcher.

Syntax: `"neural field", NeRF, -medical, ~scene`. Quoted text is a phrase; a leading `-` excludes a
word or a phrase, a leading `~` asks for fewer papers holding it ("less like this" writes these).
With commas, each comma-separated item is one term (several unquoted words in an item form a
phrase, so `graph neural networks, NeRF` means two terms); without commas, spaces separate terms.
Matching is case-insensitive on the inflections of a word's lemma ("representations" finds
"representation", "ranking" finds "rankings" but not "rank": lemminflect's lexicon and its rules for
unknown words, not a stemmer's derivations) in American spelling ("optimisation" finds
"optimization") at word boundaries, except for acronyms: an all-capitals query word such as `INR`
only matches the same capitals in the paper (`INR`, `INRs`), never `inr` inside other words or
`INRIA`. A phrase also matches its words written joined ("fine tuning" finds "finetuning"); the
engine adds the other direction and acronyms defined in the papers (`definitions`). Each paper token
also carries its written form (`surface_key`), so the engine can tell a keyword written as the
reader typed it from one of the other forms these rules relate.
"""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer
from breame.spelling import get_american_spelling
from lemminflect import getAllLemmas, getAllLemmasOOV

# snowballstemmer hands out PyStemmer's C implementation when it is installed.
_STEMMER = snowballstemmer.stemmer("english")
_WORD_RE = re.compile(r"[^\W_]+")
_SYNTAX_RE = re.compile(r'([-~]?)"([^"]*)"?|([^\s,"]+)|(,)')
_VOWELS = set("aeiouy")
_COMBINING_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
ACRONYM_PREFIX = "A:"
SURFACE_PREFIX = "="
# A word's readings, the one a query word is read as first: keywords are mostly noun phrases.
_READINGS = ("NOUN", "VERB", "ADJ", "ADV", "PROPN", "AUX")
_DEFINED_RE = re.compile(r"\(\s*([A-Z][A-Za-z0-9-]{1,11})\s*\)")
# Short words an expansion may hold that its acronym leaves out: "Bag of Words (BoW)".
_ACRONYM_GAPS = frozenset("a an and for in of on the to with".split())

# Research words breame's British -> American table lacks; each stem takes the -ise endings.
_ISE_STEMS = """binari categori characteri discreti initiali lemmati parameteri parametri quanti summari tokeni
    vectori""".split()
_ISE_ENDINGS = ("se", "sed", "ses", "sing", "ser", "sers", "sation", "sations")
_AMERICAN_EXTRA = {stem + ending: stem + "z" + ending[1:] for stem in _ISE_STEMS for ending in _ISE_ENDINGS}

# A lone word from this list would match almost every abstract; inside a phrase it is kept.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no
    nor not now of off on once only or other our ours out over own same she should so some such
    than that the their theirs them then there these they this those through to too under until up
    us very was we were what when where which while who whom why will with would you your yours
    via using use used based new towards toward without within across among""".split()
)


def fold(text: str) -> str:
    """Accents off, compatibility forms unified (ﬁ -> fi, full-width letters -> ASCII)."""
    if text.isascii():
        return text
    return _COMBINING_RE.sub("", unicodedata.normalize("NFKD", text))


def words(text: str) -> list[str]:
    """Word tokens in their original case: letters and digits; hyphens and punctuation split."""
    return _WORD_RE.findall(fold(text))


def american(lowered: str) -> str:
    """A lower-case word in American spelling ("modelling" -> "modeling")."""
    return _AMERICAN_EXTRA.get(lowered) or get_american_spelling(lowered)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    lowered = american(word.lower())
    # Porter keeps the plural s of vowel-less words ("llms"); drop it so "LLM" and "LLMs" agree.
    if len(lowered) > 2 and lowered.endswith("s") and not _VOWELS & set(lowered[:-1]):
        lowered = lowered[:-1]
    return _STEMMER.stemWord(lowered)


@lru_cache(maxsize=200_000)
def lemmas(word: str) -> tuple[str, ...]:
    """The lemmas a word can be an inflection of, its noun reading first: "rankings" -> ("ranking",),
    "ranking" -> ("ranking", "rank"), "ranked" -> ("rank",), "optimised" -> ("optimize",). A word
    the lexicon lacks is read by lemminflect's rules as a noun and as a verb ("finetuning" ->
    ("finetuning", "finetune"))."""
    lowered = american(word.lower())
    known = getAllLemmas(lowered)
    if not known:
        known = {**getAllLemmasOOV(lowered, "NOUN"), **getAllLemmasOOV(lowered, "VERB")}
    readings = [known[pos] for pos in _READINGS if pos in known]
    found = dict.fromkeys(lemma.lower() for reading in readings for lemma in reading if lemma)
    return tuple(found) or (lowered,)


def inflection_key(word: str) -> str:
    """The lemma a query word is looked up by: its first reading ("ranking" -> "ranking")."""
    return lemmas(word)[0]


def surface_key(word: str) -> str:
    """A word as written, case aside except for acronyms: "Graphs" -> "=graphs", "INRs" -> "=INRs"."""
    return SURFACE_PREFIX + (word if acronym(word) else word.lower())


@lru_cache(maxsize=200_000)
def acronym(word: str) -> str | None:
    """The acronym a word spells ("INRs" -> "INR"), or None for ordinary and mixed-case words."""
    core = word[:-1] if len(word) > 2 and word.endswith("s") else word
    letters = sum(ch.isalpha() for ch in core)
    if 2 <= len(core) <= 10 and letters >= 2 and core.isupper() and core.isalnum():
        return core
    return None


def word_key(word: str) -> str:
    """The key a query word is looked up by: its acronym when it is one, else its lemma."""
    spelled = acronym(word)
    return ACRONYM_PREFIX + spelled if spelled else inflection_key(word)


@lru_cache(maxsize=200_000)
def token_keys(token: str) -> tuple[str, ...]:
    """A paper token's keys: its lemmas, its acronym key when it spells one, and last its surface key."""
    spelled = acronym(token)
    return (*lemmas(token), *([ACRONYM_PREFIX + spelled] if spelled else []), surface_key(token))


def text_keys(text: str) -> list[tuple[str, ...]]:
    """Per token of a paper's text: its keys (see `token_keys`)."""
    return [token_keys(token) for token in words(text)]


@dataclass(frozen=True)
class Term:
    text: str
    keys: tuple[str, ...]
    # The same term with two adjacent words written as one ("fine tuning" -> "finetuning").
    joined: tuple[tuple[str, ...], ...] = ()
    # The words as typed (`surface_key`): "fine-tuning" and "fine tuning" are both ("=fine", "=tuning").
    surface: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeywordQuery:
    include: tuple[Term, ...] = ()
    exclude: tuple[Term, ...] = ()
    fewer: tuple[Term, ...] = ()  # "less like this": lowered, never vetoed (see digest.matching.engine)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude or self.fewer)


@lru_cache(maxsize=100_000)
def make_term(text: str, forms: bool = True) -> Term | None:
    """A keyword or phrase as typed -> its Term (cached: an audience types the same terms).

    Without `forms`, only its keys: no joined or written forms, which the subject line of a
    digest does not read and which cost the most (a joined word is mostly one the lexicon lacks,
    read by lemminflect's model).
    """
    tokens = words(text)
    if not tokens or (len(tokens) == 1 and tokens[0].lower() in STOPWORDS and not acronym(tokens[0])):
        return None
    keys = tuple(word_key(token) for token in tokens)
    if not forms:
        return Term(text=" ".join(text.split()), keys=keys)
    joined = tuple(
        (*keys[:start], inflection_key(tokens[start] + tokens[start + 1]), *keys[start + 2 :])
        for start in range(len(tokens) - 1)
        if not (acronym(tokens[start]) or acronym(tokens[start + 1]))
    )
    surface = tuple(surface_key(token) for token in tokens)
    return Term(text=" ".join(text.split()), keys=keys, joined=joined, surface=surface)


INCLUDE, EXCLUDE, FEWER = "", "-", "~"
_SIGNS = EXCLUDE + FEWER


def _raw_terms(raw: str) -> list[tuple[str, str]]:
    """(sign, text) per term: "" wanted, "-" excluded, "~" fewer of these."""
    comma_mode = "," in re.sub(r'"[^"]*"?', "", raw)
    found: list[tuple[str, str]] = []
    item: list[str] = []
    item_sign = INCLUDE

    def flush() -> None:
        nonlocal item, item_sign
        if item:
            found.append((item_sign, " ".join(item)))
        item, item_sign = [], INCLUDE

    for match in _SYNTAX_RE.finditer(raw):
        sign, quoted, bare, comma = match.groups()
        if comma:
            flush()
        elif quoted is not None:
            found.append((sign, quoted))
        elif comma_mode:
            if not item and bare[0] in _SIGNS:
                item_sign = bare[0]
            item.append(bare.lstrip(_SIGNS) if not item else bare)
        else:
            found.append((bare[0] if bare[0] in _SIGNS else INCLUDE, bare.lstrip(_SIGNS)))
    flush()
    return found


def parse_keywords(raw: str, forms: bool = True) -> KeywordQuery:
    """The terms of a keyword string; without `forms`, each only with its keys (see `make_term`)."""
    by_sign: dict[str, dict[tuple[str, ...], Term]] = {INCLUDE: {}, EXCLUDE: {}, FEWER: {}}
    for sign, text in _raw_terms(raw or ""):
        term = make_term(text, forms)
        if term is not None:
            by_sign[sign].setdefault(term.keys, term)
    include, exclude, fewer = by_sign[INCLUDE], by_sign[EXCLUDE], by_sign[FEWER]
    for keys in [*exclude, *fewer]:
        include.pop(keys, None)
    for keys in exclude:
        fewer.pop(keys, None)
    return KeywordQuery(include=tuple(include.values()), exclude=tuple(exclude.values()), fewer=tuple(fewer.values()))


def positive_keywords(keywords: str) -> list[str]:
    """The wanted terms of a keyword string such as `"neural field", NeRF, -medical`."""
    return [term.text for term in parse_keywords(keywords).include]


def occurs(term: Term, keys: Sequence[tuple[str, ...]]) -> bool:
    """Whether the term's words appear consecutively in a tokenised text (see `text_keys`)."""
    return occurs_keys(term.keys, keys)


def occurs_keys(wanted: Sequence[str], keys: Sequence[tuple[str, ...]]) -> bool:
    width = len(wanted)
    first = wanted[0]
    for start in range(len(keys) - width + 1):
        if first not in keys[start]:
            continue
        if all(wanted[offset] in keys[start + offset] for offset in range(1, width)):
            return True
    return False


def _initials(word: str) -> str:
    """A word's initial and its inner capitals: "AutoEncoder" -> "AE", "neural" -> "N"."""
    if word.isupper():
        return word[0]
    return (word[0] + "".join(ch for ch in word[1:] if ch.isupper() or ch.isdigit())).upper()


def definitions(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Acronyms a text defines, as (acronym key, expansion keys): "implicit neural representations
    (INRs)" gives ("A:INR", ("implicit", "neural", "represent")). The expansion is the run of words
    just before the parenthesis whose initials (and inner capitals) spell the acronym's capitals
    and digits, short words such as "of" allowed in between."""
    found = []
    text = fold(text)
    for match in _DEFINED_RE.finditer(text):
        written = match.group(1)
        core = written[:-1] if written.endswith("s") and len(written) > 2 else written
        letters = "".join(ch for ch in core if ch.isupper() or ch.isdigit())
        if len(letters) < 2 or "-" in core:
            continue
        before = words(text[max(0, match.start() - 200) : match.start()])
        remaining, start = letters, len(before)
        while remaining and start > 0 and len(before) - start <= len(letters) + 3:
            word = before[start - 1]
            initials = _initials(word)
            if remaining.endswith(initials):
                remaining = remaining[: -len(initials)]
            elif word.lower() not in _ACRONYM_GAPS or start == len(before):
                break
            start -= 1
        if not remaining and start < len(before):
            found.append((word_key(core), tuple(word_key(token) for token in before[start:])))
    return found


def remove_keyword(keywords: str, term: str) -> str:
    """`keywords` without the items written exactly as `term` (`"a phrase"`, `word`, `~word`).

    Every other item is kept as written. Unchanged when `term` is not there.
    """
    closed = keywords + '"' if keywords.count('"') % 2 else keywords
    if "," in re.sub(r'"[^"]*"', "", closed):
        items = [item.strip() for item in re.findall(r'(?:"[^"]*"|[^,"])+', closed)]
    else:
        items = [match.group(0) for match in re.finditer(r'[-~]?"[^"]*"|[^\s,"]+', closed)]
    items = [item for item in items if item]
    kept = [item for item in items if item != term.strip()]
    if len(kept) == len(items):
        return keywords
    if len(kept) == 1 and " " in kept[0] and '"' not in kept[0]:
        # One comma-mode item of several words is a phrase; without a comma it would be split.
        sign = kept[0][0] if kept[0][0] in _SIGNS else ""
        kept = [f'{sign}"{kept[0].removeprefix(sign)}"']
    return ", ".join(kept)

"""Relevance, sixteenth round (issue 14): the candidates of bench/relevance/ROUND16-RULE.md, on the fit sets.

    python bench/round16.py [--vector-cache DIR] [--draws 1000]
    python bench/round16.py --audience

Only the fit sets seeds, feeds-a, feeds-e and feeds-f are loaded (feeds-i is left out, as the stored
weights leave it out; held-out sets are never read). Each set is indexed beside the 1,000
background papers, and every row is built by bench/relevance_fit.py's `examples`, fitted and
cross-validated by its `predictor`s, as `--cross-validate` does. Each candidate is the shipped
features plus one change (the rule names them): (t) an acronym found inside a compound word, (u)
the BM25 of the interest's unwanted sentences, (v) the best cosine over the wanted sentences, (v2)
over the wanted text's facets, (w) paper vectors averaged over 256-token windows, (x) the cosine
with the paper's title.

Prints per candidate the LORO figures (description, joint model alone, both mode), the paired change
against the shipped features with its bootstrap sd, the most-helped reader, each fit set predicted
from the others, what the rule says, and the wanted and unwanted papers it gains and loses; then
(w)'s token counts and encoding cost. `--vector-cache DIR` keeps sentence vectors in DIR (outside
the repository) between runs. The last lines are machine-readable, one per candidate.

--audience prints instead what the candidates' matching cost depends on in `bench/matching.py
--subscribers 100000 --papers 2000`'s generated audience (its Generator, seed 1): distinct wanted
texts, those with unwanted sentences, several sentences or facets, distinct acronym keywords, and
the CPU time of one interest's product with the papers' vectors (what (v), (v2) and (x) add per
extra text) and of one BM25 score (what (u) adds). Nothing is matched.
"""

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()  # before numpy loads: config.celery sets BLAS to one thread, as in a worker

import numpy as np  # noqa: E402

from bench.relevance import Reader, background_papers, load_sets  # noqa: E402
from bench.relevance_fit import (  # noqa: E402
    TARGET_PRECISION,
    VETOED,
    ExtraFeatures,
    Predictor,
    PredictorMaker,
    design_of,
    examples,
    fit,
    from_the_others,
    leave_one_reader_out,
    predictor,
    run_predictors,
    set_of,
)
from bench.vector_cache import vector_cache  # noqa: E402
from digest.matching import embedding, relevance_model  # noqa: E402
from digest.matching.engine import KEYWORD_FEATURES, BatchIndex  # noqa: E402
from digest.matching.similarity import interest_sentences, wanted_text  # noqa: E402
from subscribers.keywords import ACRONYM_PREFIX, KeywordQuery, Term, acronym, words  # noqa: E402

FIT_SETS = ("seeds", "feeds-a", "feeds-e", "feeds-f")
BACKGROUND = 1000
L2 = 1.0
SEED = 16
POSITION = "position"  # not a feature: the paper's position in its set, to name changed papers
# (t): acronyms of this many capital letters are looked for inside compound words.
COMPOUND_LETTERS = range(2, 7)
WINDOW_PIECES = embedding.MAX_TOKENS - 2  # a window's word pieces, between [CLS] and [SEP]


# -- (t) an acronym inside a compound -------------------------------------------------------------


def compound_acronym(term: Term) -> str | None:
    """The acronym a one-word keyword spells when it is 2 to 6 capital letters A-Z ("RAG", "LLMs")."""
    tokens = words(term.text)
    spelled = acronym(tokens[0]) if len(tokens) == 1 else None
    if spelled and spelled.isascii() and spelled.isalpha() and len(spelled) in COMPOUND_LETTERS:
        return spelled
    return None


def holds_compound(token: str, part: str) -> bool:
    """Whether the token holds the acronym as a part of a compound: after the token's start, a
    lower-case letter or a digit; before its end, a digit, a final "s", or a capitalised part
    ("TableRAG", "RAGCache", "MultiLLM"; not "RAG", "RAGs", "DRAGON" or "RAGged")."""
    if token in (part, part + "s"):
        return False
    start = token.find(part)
    while start >= 0:
        rest = token[start + len(part) :]
        before = start == 0 or token[start - 1].islower() or token[start - 1].isdigit()
        after = not rest or rest[0].isdigit() or rest == "s" or (rest[0].isupper() and rest[1:2].islower())
        if before and after:
            return True
        start = token.find(part, start + 1)
    return False


class CompoundIndex(BatchIndex):
    """A BatchIndex where an acronym keyword is also found inside compound words, as written (t)."""

    _compound: tuple[str, tuple[str, ...]] | None = None

    def term_hits(self, term: Term):  # the engine's private _Hits
        part = compound_acronym(term)
        self._compound = (part, (ACRONYM_PREFIX + part, *term.surface)) if part else None
        try:
            return super().term_hits(term)
        finally:
            self._compound = None

    def _phrase_hits(self, keys: tuple[str, ...]) -> dict[int, bool]:
        found = super()._phrase_hits(keys)
        if self._compound is not None and len(keys) == 1 and keys[0] in self._compound[1]:
            for position, titled in self.compounds(self._compound[0]).items():
                found[position] = found.get(position, False) or titled
        return found

    def compounds(self, part: str) -> dict[int, bool]:
        """Paper position -> whether in its title, for the papers holding the acronym in a compound."""
        found: dict[int, bool] = {}
        for position, paper in enumerate(self.papers):
            if any(holds_compound(token, part) for token in words(paper.title)):
                found[position] = True
            elif any(holds_compound(token, part) for token in words(paper.abstract)):
                found[position] = False
        return found


# -- (w) long abstracts ---------------------------------------------------------------------------

WINDOWED: dict[bytes, np.ndarray] = {}  # text digest -> its windows' vector (kept with --vector-cache)


@dataclass
class WindowCost:
    """CPU seconds spent encoding first windows and the others, over the papers encoded here."""

    first: float = 0.0
    rest: float = 0.0
    papers: int = 0


COST = WindowCost()


def window_pieces(text: str) -> list[list[int]]:
    pieces = embedding.encoder().tokenizer.piece_ids(text)
    return [pieces[start : start + WINDOW_PIECES] for start in range(0, max(len(pieces), 1), WINDOW_PIECES)]


def windowed_vector(text: str) -> np.ndarray:
    """The normalised mean of the vectors of the text's windows (its vector when it has one)."""
    key = embedding._digest(text)
    known = WINDOWED.get(key)
    if known is not None:
        return known
    encoder = embedding.encoder()
    vectors = []
    for number, pieces in enumerate(window_pieces(text)):
        started = time.process_time()
        vectors.append(encoder.encode_ids(encoder.tokenizer.sequence(pieces)))
        spent = time.process_time() - started
        if number:
            COST.rest += spent
        else:
            COST.first += spent
    COST.papers += 1
    mean = np.mean(vectors, axis=0)
    WINDOWED[key] = (mean / np.linalg.norm(mean)).astype(np.float32)
    return WINDOWED[key]


class WindowIndex(BatchIndex):
    """A BatchIndex whose paper vectors cover the whole text in windows (w)."""

    @cached_property
    def paper_vectors(self) -> np.ndarray:
        texts = [embedding.embedding_text(paper.title, paper.abstract) for paper in self.papers]
        return np.vstack([windowed_vector(text) for text in texts]) if texts else super().paper_vectors


def token_counts(texts: Sequence[str]) -> tuple[int, int, int]:
    """How many texts exceed MAX_TOKENS tokens ([CLS] and [SEP] counted), their word pieces in all,
    and the pieces the first windows hold."""
    pieces = [len(embedding.encoder().tokenizer.piece_ids(text)) for text in texts]
    long = sum(1 for count in pieces if count > WINDOW_PIECES)
    return long, sum(pieces), sum(min(count, WINDOW_PIECES) for count in pieces)


# -- (u), (v), (v2), (x): features beside the shipped ones ----------------------------------------


def unwanted_bm25(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
    wanted, unwanted = interest_sentences(reader.interest)
    if not wanted or not unwanted:
        return {"unwanted_bm25": np.zeros(index.size, np.float32)}
    return {"unwanted_bm25": index.similarity.meaning_scores([" ".join(unwanted)]).bm25[0]}


def sentence_cosine(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
    wanted, unwanted = interest_sentences(reader.interest)
    return {"sentence_cosine": index.embedding_scores(wanted or unwanted).max(axis=0)}


def facets(text: str) -> list[str]:
    """The wanted text's facets: "head: part" for each part of the list after its first colon."""
    head, colon, listed = text.partition(":")
    if not colon:
        return [text]
    parts = [re.sub(r"^(?:and|or)\s+", "", part.strip()) for part in re.split(r"[,;]", listed)]
    return [f"{head.strip()}: {part}" for part in parts if part] or [text]


def facet_cosine(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
    return {"facet_cosine": index.embedding_scores(facets(wanted_text(reader.interest))).max(axis=0)}


def title_cosine(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
    titles = index.vectors([paper.title for paper in index.papers])
    return {"title_cosine": titles @ index.vectors([wanted_text(reader.interest)])[0]}


def paper_position(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
    return {POSITION: np.arange(index.size, dtype=np.float32)}


def combined(*extras: ExtraFeatures) -> ExtraFeatures:
    def features(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for extra in extras:
            found.update(extra(index, reader, query))
        return found

    return features


@dataclass(frozen=True)
class Candidate:
    name: str
    label: str
    added: tuple[str, ...] = ()  # features added to both models
    index_class: type[BatchIndex] = BatchIndex


CANDIDATES = (
    Candidate("shipped", "none (shipped)"),
    Candidate("t", "(t) acronym inside a compound", index_class=CompoundIndex),
    Candidate("u", "(u) unwanted sentences' BM25", ("unwanted_bm25",)),
    Candidate("v", "(v) best wanted sentence's cosine", ("sentence_cosine",)),
    Candidate("v2", "(v2) best facet's cosine", ("facet_cosine",)),
    Candidate("w", "(w) windows over long abstracts", index_class=WindowIndex),
    Candidate("x", "(x) title cosine", ("title_cosine",)),
)
EXTRA = combined(paper_position, unwanted_bm25, sentence_cosine, facet_cosine, title_cosine)


# -- evaluation -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One candidate's LORO predictions and figures (both mode over the rows of readers with keywords)."""

    description: np.ndarray
    joint: np.ndarray
    both: np.ndarray
    both_unvetoed: np.ndarray
    others: dict[str, np.ndarray]


Columns = dict[str, list[np.ndarray]]


def within(predict: Predictor, allowed: np.ndarray) -> Predictor:
    """The predictor fitted on the training rows that are also `allowed` only (what the rows outside
    the training rows get from a fit on fewer rows)."""

    def predicted_apart(train: np.ndarray) -> np.ndarray:
        inner = train & allowed
        return predict(inner)[(~train)[~inner]]

    return predicted_apart


def evaluate(
    columns: Columns,
    labels: np.ndarray,
    with_keywords: np.ndarray,
    readers: np.ndarray,
    added: Sequence[str],
    joint_added: Sequence[str] = (),
    make: PredictorMaker = predictor,
    allowed: np.ndarray | None = None,
) -> Outcome:
    """LORO and from-the-others predictions with these features added (`added` to both models,
    `joint_added` to the joint one), each model fitted by `make`, on the `allowed` rows only if given."""
    description = design_of(columns, (*relevance_model.DESCRIPTION_FEATURES, *added))
    both = design_of(columns, (*relevance_model.BOTH_FEATURES, *added, *joint_added))
    vetoed = np.concatenate(columns[VETOED]) > 0
    rows = with_keywords
    allowed = np.ones(len(labels), dtype=bool) if allowed is None else allowed
    alone = within(make(description, labels, TARGET_PRECISION["description"], L2), allowed)
    joint, picked = run_predictors(description[rows], both[rows], labels[rows], vetoed[rows], L2, make)
    _, unvetoed = run_predictors(description[rows], both[rows], labels[rows], np.zeros(rows.sum(), bool), L2, make)
    joint, picked, unvetoed = (within(predict, allowed[rows]) for predict in (joint, picked, unvetoed))
    return Outcome(
        description=leave_one_reader_out(alone, readers),
        joint=leave_one_reader_out(joint, readers[rows]),
        both=leave_one_reader_out(picked, readers[rows]),
        both_unvetoed=leave_one_reader_out(unvetoed, readers[rows]),
        others=from_the_others(picked, readers[rows]),
    )


def precision_recall(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float, int, int]:
    hits = int((predicted & (labels == 1)).sum())
    return hits / max(int(predicted.sum()), 1), hits / max(int(labels.sum()), 1), hits, int(predicted.sum())


def per_reader(predicted: np.ndarray, labels: np.ndarray, readers: np.ndarray) -> np.ndarray:
    """Per reader (sorted): wanted papers found, papers picked, wanted papers."""
    names = np.unique(readers)
    return np.array(
        [
            [int((predicted & (labels == 1))[readers == name].sum()), int(predicted[readers == name].sum())]
            + [int((labels[readers == name] == 1).sum())]
            for name in names
        ]
    )


def bootstrap_sd(shipped: np.ndarray, candidate: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """The sd over draws of readers of the paired change in recall and in precision."""
    recall, precision = [], []
    for drawn in draws:
        s, c = shipped[drawn].sum(axis=0), candidate[drawn].sum(axis=0)
        recall.append(c[0] / c[2] - s[0] / s[2])
        precision.append(c[0] / max(c[1], 1) - s[0] / max(s[1], 1))
    return float(np.std(recall)), float(np.std(precision))


def judge(
    name: str,
    shipped: Outcome,
    outcome: Outcome,
    labels: np.ndarray,
    readers: np.ndarray,
    draws: np.ndarray,
    report: Callable[[str], object] = print,
) -> str:
    """The rule's figures for one candidate against the shipped features; returns the machine line."""
    base = per_reader(shipped.both, labels, readers)
    found = per_reader(outcome.both, labels, readers)
    p0, r0, *_ = precision_recall(shipped.both, labels)
    p1, r1, hits, picked = precision_recall(outcome.both, labels)
    recall_sd, precision_sd = bootstrap_sd(base, found, draws)
    gains = found[:, 0] - base[:, 0]
    helped = int(np.argmax(gains))
    rest = np.arange(len(gains)) != helped
    without = found[rest, 0].sum() / found[rest, 2].sum() - base[rest, 0].sum() / base[rest, 2].sum()
    sets = set_of(readers)
    falls = []
    others = []
    for set_name, predicted in outcome.others.items():
        p, r, *_ = precision_recall(predicted, labels[sets == set_name])
        _, r_base, *_ = precision_recall(shipped.others[set_name], labels[sets == set_name])
        others.append(f"{set_name} {p:.2f} / {r:.2f}")
        if r < r_base - 1e-12:
            falls.append(set_name)
    parts_a = {
        1: r1 - r0 > recall_sd,
        2: p1 >= p0 - 0.005 and p1 >= 0.875,
        3: without > 0,
        4: len(falls) <= 1,
    }
    passes_a = all(parts_a.values())
    passes_b = p1 - p0 > precision_sd and r1 >= r0
    failed = [str(part) for part, held in parts_a.items() if not held]
    verdict = ("passes (A)" if passes_a else "fails " + ", ".join(failed)) + ("; passes (B)" if passes_b else "; not B")
    report(
        f"  both recall change {r1 - r0:+.3f} ± {recall_sd:.3f} "
        f"(precision change {p1 - p0:+.3f} ± {precision_sd:.3f}); "
        f"most helped {np.unique(readers)[helped]} {gains[helped]:+d}: without it {without:+.3f}; "
        f"from the others recall falls on: {', '.join(falls) or 'none'}; {verdict}"
    )
    return (
        f"candidate={name} precision={p1:.3f} recall={r1:.3f} found={hits} picked={picked} "
        f"recall_change={r1 - r0:.3f} recall_sd={recall_sd:.3f} precision_change={p1 - p0:.3f} "
        f"precision_sd={precision_sd:.3f} without_most_helped={without:.3f} falls={len(falls)} "
        f"passes_a={int(passes_a)} passes_b={int(passes_b)}"
    )


def describe(outcome: Outcome, labels: np.ndarray, with_keywords: np.ndarray, readers: np.ndarray) -> list[str]:
    rows = with_keywords
    lines = []
    for title, predicted, wanted in (
        ("description", outcome.description, labels),
        ("joint alone", outcome.joint, labels[rows]),
        ("both", outcome.both, labels[rows]),
        ("both without vetoes", outcome.both_unvetoed, labels[rows]),
    ):
        p, r, hits, picked = precision_recall(predicted, wanted)
        lines.append(f"{title} {p:.3f} / {r:.3f} ({hits} / {picked})")
    sets = set_of(readers[rows])
    others = [
        f"{name} {precision_recall(predicted, labels[rows][sets == name])[0]:.2f} / "
        f"{precision_recall(predicted, labels[rows][sets == name])[1]:.2f}"
        for name, predicted in outcome.others.items()
    ]
    return ["LORO " + "; ".join(lines), "from the others, both: " + ", ".join(others)]


def added_weights(
    columns: Columns,
    labels: np.ndarray,
    with_keywords: np.ndarray,
    added: Sequence[str],
    joint_added: Sequence[str] = (),
) -> str:
    """The added features' weights, each model fitted on every row (as the stored weights are)."""
    found = []
    for model, names, extra, rows in (
        ("description", relevance_model.DESCRIPTION_FEATURES, added, np.ones(len(labels), dtype=bool)),
        ("joint", relevance_model.BOTH_FEATURES, (*added, *joint_added), with_keywords),
    ):
        if not extra:
            continue
        weights = fit(design_of(columns, (*names, *extra))[rows], labels[rows], L2)
        found += [f"{model} {name} {weight:+.2f}" for name, weight in zip(extra, weights[-len(extra) :], strict=True)]
    return "fitted on every row: " + ", ".join(found)


def changes(
    shipped: Outcome,
    outcome: Outcome,
    labels: np.ndarray,
    readers: np.ndarray,
    positions: np.ndarray,
    titles: dict[str, list[str]],
) -> list[str]:
    """The both-mode picks that differ from the shipped features': reader, label, title."""
    found = []
    for row in np.flatnonzero(shipped.both != outcome.both):
        sign = "+" if outcome.both[row] else "-"
        set_name = readers[row].split("/")[0]
        label = "wanted" if labels[row] == 1 else "unwanted"
        found.append(f"    {sign} {label} {readers[row]}: {titles[set_name][int(positions[row])][:90]}")
    return sorted(found, key=lambda line: (line.split()[1], line.split()[0]))


Rows = tuple[Columns, np.ndarray, np.ndarray, np.ndarray]  # examples()'s columns, labels, with keywords, readers


def rows_by_index(background: list[str]) -> dict[type[BatchIndex], Rows]:
    """examples() of the fit sets once per index class the candidates use, with every added feature."""
    built: dict[type[BatchIndex], Rows] = {}
    for index_class in dict.fromkeys(candidate.index_class for candidate in CANDIDATES):
        started = time.perf_counter()
        columns, labels, with_keywords, readers, used = examples(
            background, sets=FIT_SETS, index_class=index_class, extra=EXTRA
        )
        built[index_class] = (columns, np.array(labels), np.array(with_keywords), np.array(readers))
        print(f"rows of {', '.join(used)} with {index_class.__name__}: {time.perf_counter() - started:.0f} s")
    return built


def compound_changes(built: dict[type[BatchIndex], Rows], titles: dict[str, list[str]]) -> None:
    """(t): the rows whose keyword features or veto the compounds change."""
    plain, labels, _, readers = built[BatchIndex]
    compound = built[CompoundIndex][0]
    positions = np.concatenate(plain[POSITION]).astype(int)
    changed = np.zeros(len(labels), dtype=bool)
    for feature in (*KEYWORD_FEATURES, VETOED):
        differs = np.concatenate(compound[feature]) != np.concatenate(plain[feature])
        print(f"(t) rows whose {feature} changed: {int(differs.sum())} ({int(differs[labels == 1].sum())} wanted)")
        changed |= differs
    for row in np.flatnonzero(changed):
        label = "wanted" if labels[row] == 1 else "unwanted"
        print(f"    {label} {readers[row]}: {titles[readers[row].split('/')[0]][positions[row]][:90]}")


def audience(subscribers: int = 100_000, papers: int = 2000) -> None:
    """What the candidates' extra matching cost depends on in bench/matching.py's audience."""
    from bench import matching
    from digest.matching.engine import build_matcher
    from subscribers.keywords import parse_keywords

    generator = matching.Generator(1)
    batch = [generator.paper(number) for number in range(1, papers + 1)]
    preferences = [generator.preferences() for _ in range(subscribers)]
    interests = [
        build_matcher(interests=chosen["interests"]).interests for chosen in preferences if "interests" in chosen
    ]
    texts = sorted(set(map(wanted_text, interests)))
    split = [interest_sentences(interest) for interest in interests]
    acronyms = {
        compound_acronym(term)
        for chosen in preferences
        for term in (*parse_keywords(chosen["keywords"]).include, *parse_keywords(chosen["keywords"]).exclude)
    } - {None}
    print(
        f"{subscribers} subscribers: {len(interests)} interests, {len(texts)} distinct wanted texts; "
        f"{sum(1 for wanted, unwanted in split if wanted and unwanted)} with an unwanted sentence, "
        f"{sum(1 for wanted, _ in split if len(wanted) > 1)} with several wanted sentences; "
        f"{sum(1 for text in texts if len(facets(text)) > 1)} distinct texts with several facets "
        f"({sum(len(facets(text)) for text in texts) / len(texts):.3f} facets a text); "
        f"{len(acronyms)} distinct acronym keywords of 2 to 6 capitals"
    )
    index = CompoundIndex(batch, now=matching.NOW, vectors=matching.pseudo_vectors)
    sample = texts[:papers]
    rows = index.similarity.model.transform(sample)
    vectors = matching.pseudo_vectors(sample)
    index.paper_products(vectors[:1])  # the papers' vectors made before the timing
    for name, work in (
        ("one interest's product with the papers' vectors", lambda: index.paper_products(vectors)),
        (
            "one TF-IDF transform and BM25 score",
            lambda: index.similarity._bm25(index.similarity.model.transform(sample)),
        ),
        ("all of one interest's meaning scores", lambda: index.similarity.meaning_scores_of(rows)),
    ):
        started = time.process_time()
        work()
        print(f"{name}: {(time.process_time() - started) / len(sample) * 1e6:.0f} us of CPU per text")
    started = time.process_time()
    for part in sorted(acronyms):
        index.compounds(part)
    print(f"(t) compound scan: {(time.process_time() - started) / len(acronyms) * 1e3:.0f} ms per acronym")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vector-cache", type=Path, help="a folder keeping sentence vectors between runs")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws over readers")
    parser.add_argument("--audience", action="store_true", help="print bench/matching.py's audience counts only")
    args = parser.parse_args()
    if args.audience:
        audience()
        return
    cache = args.vector_cache
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    background = background_papers(BACKGROUND)
    titles = {labelled.name: [paper.title for paper in labelled.papers] for labelled in load_sets(FIT_SETS)}
    print(f"fit sets: {', '.join(FIT_SETS)} (held-out sets are never read); background {len(background)} papers")
    with ExitStack() as stack:
        stack.enter_context(vector_cache(cache / "sentences.npz" if cache else None))
        stack.enter_context(vector_cache(cache / "windows.npz" if cache else None, WINDOWED))
        built = rows_by_index(background)
        columns, labels, with_keywords, readers = built[BatchIndex]
        rows = with_keywords
        print(f"{len(np.unique(readers))} readers, {len(labels)} judged pairs, {int(labels.sum())} wanted")
        count = len(np.unique(readers[rows]))
        draws = np.random.default_rng(SEED).integers(0, count, (args.draws, count))
        outcomes = {
            candidate.name: evaluate(*built[candidate.index_class], candidate.added) for candidate in CANDIDATES
        }
        shipped = outcomes["shipped"]
        positions = np.concatenate(columns[POSITION])[rows]
        machine = []
        for candidate in CANDIDATES:
            outcome = outcomes[candidate.name]
            print(f"\n{candidate.label}")
            for line in describe(outcome, labels, with_keywords, readers):
                print("  " + line)
            if candidate.added:
                print("  " + added_weights(columns, labels, with_keywords, candidate.added))
            if candidate.name == "shipped":
                continue
            machine.append(judge(candidate.name, shipped, outcome, labels[rows], readers[rows], draws))
            for line in changes(shipped, outcome, labels[rows], readers[rows], positions, titles):
                print(line)
        print()
        compound_changes(built, titles)
        report_windows(background)
    print()
    for line in machine:
        print(line)


def report_windows(background: Sequence[str]) -> None:
    fit_texts = [
        embedding.embedding_text(paper.title, paper.abstract)
        for labelled in load_sets(FIT_SETS)
        for paper in labelled.papers
    ]
    for name, texts in (("fit-set papers", fit_texts), ("background papers", background)):
        long, pieces, first = token_counts(texts)
        print(
            f"(w) {name}: {long} of {len(texts)} exceed {embedding.MAX_TOKENS} tokens; "
            f"word pieces {pieces} in all, {first} in first windows (ratio {pieces / first:.2f})"
        )
    if COST.papers:
        print(
            f"(w) encoding CPU over {COST.papers} papers encoded here: first windows {COST.first:.1f} s, "
            f"the others {COST.rest:.1f} s: ratio {(COST.first + COST.rest) / COST.first:.2f}"
        )


if __name__ == "__main__":
    main()

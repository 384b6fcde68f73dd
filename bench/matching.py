"""Matching speed: many subscribers against a day of papers, beside a naive baseline.

    python bench/matching.py --subscribers 100000 --papers 2000

Papers and subscribers are generated from the seed papers' vocabulary: abstracts are sentences of
seed abstracts, titles mix seed titles; subscribers get keywords (phrases, acronyms, exclusions)
drawn from the same text, free-text interests cut from seed abstracts, seed topics, followed
authors and categories, in proportions a real audience might have. The timed part is exactly what
`digest.matching.runs.match_chunk` runs between its queries: compile each chunk's matchers, match them
against the batch index (built once, like a worker's cached run index), produce the ranked matches
with reasons. No database is involved; the queries of a chunk are a fixed handful (see
tests/digest/matching/test_runs.py).

The baseline is the obvious program: every subscriber against every paper, one case-insensitive
word-boundary regex per keyword (no stemming, no interests, topics or authors, so it does less
work). It is timed on a sample of subscribers and extrapolated. Times are CPU seconds of the
process (time.process_time, all its threads), so other jobs on the machine inflate them less than
the wall-clock time printed beside them; the goal (under 60 s) is read on the CPU seconds. The
process computes on one BLAS thread, as a worker does (config/celery.py sets OPENBLAS_NUM_THREADS
and its kin to 1 unless the environment sets them; docs/decisions.md, "BLAS threads"): then its CPU
time is its wall-clock time on an idle machine. With more BLAS threads the CPU seconds count every
thread's spinning, which is why the threads are printed. The last line is machine-readable.
"""

import argparse
import hashlib
import json
import os
import random
import re
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()  # before numpy loads: config.celery sets BLAS to one thread, as in a worker

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from bench.relevance import seed_papers  # noqa: E402
from config.celery import BLAS_THREAD_VARIABLES  # noqa: E402
from digest.management.progress import progress  # noqa: E402
from digest.matching.embedding import DIMENSIONS, embedding_text  # noqa: E402
from digest.matching.engine import BatchIndex, PaperDoc, build_matcher, match_subscribers  # noqa: E402
from digest.matching.reader_model import ReaderWeights, train  # noqa: E402
from digest.matching.similarity import paper_text  # noqa: E402
from subscribers.keywords import STOPWORDS, parse_keywords  # noqa: E402

NOW = datetime(2026, 11, 26, 8, tzinfo=UTC)
CATEGORIES = ["cs.LG", "cs.CV", "cs.CL", "cs.AI", "cs.NE", "stat.ML", "eess.IV", "q-bio.NC", "cs.RO", "cs.IR"]
FIRST_NAMES = (
    "Yann Yoshua Geoffrey Fei-Fei Andrew Demis Ilya Jürgen Léon Sébastien Chen Wei Li Hao Mei Ana José Zoë Ngozi Priya "
    "Ivan Olga Søren Björn Amir Noor Kenji Yuki Marta Luca"
).split()
FAMILY_NAMES = (
    "LeCun Bengio Hinton Li Ng Hassabis Sutskever Schmidhuber Bottou Bubeck Chen Zhang Wang Liu Müller García Núñez "
    "Okafor Sharma Petrov Ivanova Kierkegaard Åström Haddad Khan Tanaka Sato Rossi Bianchi Dubois van der Berg"
).split()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) > 4]


class Generator:
    """Papers babbled by word-pair chains over the seed abstracts, each around one seed's theme, so
    wording is new but vocabulary and topics are those of real papers; subscribers pick a theme too."""

    THEME_SHARE = 0.75  # share of words following the theme paper's chain rather than all seeds'

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seeds = seed_papers()
        self.seed_tokens = [f"{paper.title} . {paper.abstract}".split() for paper in self.seeds]
        self.chains = [self._chain([tokens]) for tokens in self.seed_tokens]
        self.global_chain = self._chain(self.seed_tokens)
        self.sentences = [sentences(paper.abstract) for paper in self.seeds]
        self.authors = [f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(FAMILY_NAMES)}" for _ in range(4000)]
        self.topics = [
            (t["name"], t["description"], t["keywords"])
            for t in json.loads((ROOT / "seeds" / "topics.json").read_text(encoding="utf-8"))
        ]
        self.terms = [self._theme_terms(tokens) for tokens in self.seed_tokens]

    @staticmethod
    def _chain(token_lists: list[list[str]]) -> dict[str, list[str]]:
        chain: dict[str, list[str]] = {}
        for tokens in token_lists:
            for first, second in pairwise(tokens):
                chain.setdefault(first, []).append(second)
        return chain

    def _theme_terms(self, tokens: list[str]) -> list[str]:
        """Words and two-word phrases of one seed a researcher might type, and its acronyms."""
        clean = [re.sub(r"[^A-Za-z0-9-]", "", token) for token in tokens]
        terms = set()
        for first, second in pairwise(clean):
            if (
                len(first) > 3
                and len(second) > 3
                and first.lower() not in STOPWORDS
                and second.lower() not in STOPWORDS
            ):
                terms.add(f'"{first.lower()} {second.lower()}"')
        for token in clean:
            if len(token) > 6 and token.lower() not in STOPWORDS:
                terms.add(token.lower())
            elif 2 <= len(token) <= 6 and token.isupper():
                terms.add(token)
        return sorted(terms)

    def _babble(self, theme: int, length: int) -> str:
        rng, chain = self.rng, self.chains[theme]
        word = rng.choice(self.seed_tokens[theme])
        out = [word]
        for _ in range(length - 1):
            following = chain.get(word) if rng.random() < self.THEME_SHARE else None
            following = following or self.global_chain.get(word) or self.seed_tokens[theme]
            word = rng.choice(following)
            out.append(word)
        return " ".join(out)

    def paper(self, number: int) -> PaperDoc:
        rng = self.rng
        theme = rng.randrange(len(self.seeds))
        return PaperDoc(
            id=number,
            title=self._babble(theme, rng.randint(6, 12)).replace(" . ", " "),
            abstract=self._babble(theme, rng.randint(120, 220)),
            authors=tuple(rng.sample(self.authors, rng.randint(2, 6))),
            categories=tuple(rng.sample(CATEGORIES, rng.randint(1, 3))),
            upvotes=int(rng.paretovariate(1.2)) - 1,
            published=NOW - timedelta(hours=rng.uniform(0, 72)),
            sources=rng.choice((1, 1, 1, 2, 3)),
        )

    def preferences(self) -> dict:
        rng = self.rng
        themes = rng.sample(range(len(self.seeds)), rng.choice((1, 1, 2)))
        terms = [rng.choice(self.terms[rng.choice(themes)]) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.2:
            terms.append("-" + rng.choice(self.terms[rng.randrange(len(self.seeds))]))
        preferences = {"keywords": ", ".join(terms)}
        if rng.random() < 0.6:
            words = rng.choice(self.sentences[themes[0]]).split()
            start = rng.randrange(max(1, len(words) - 8))
            preferences["interests"] = " ".join(words[start : start + rng.randint(8, 25)])
        if rng.random() < 0.4:
            preferences["topics"] = rng.sample(self.topics, rng.randint(1, 2))
        if rng.random() < 0.2:
            followed = rng.sample(self.authors, rng.randint(1, 3))
            preferences["authors"] = [self._written_differently(name) for name in followed]
        if rng.random() < 0.3:
            preferences["categories"] = rng.sample(CATEGORIES, rng.randint(1, 2))
            preferences["category_mode"] = "filter" if rng.random() < 0.33 else "boost"
        return preferences

    def liked_papers(self) -> tuple[str, ...]:
        """A liked-papers list of 2 to 10 papers generated for this subscriber alone: no two
        subscribers share a liked paper, the dearest case (shared ones are read once per batch)."""
        chosen = [self.paper(0) for _ in range(self.rng.randint(2, 10))]
        return tuple(paper_text(paper.title, paper.abstract) for paper in chosen)

    def reader_models(self, count: int, papers: Sequence[PaperDoc]) -> list[ReaderWeights]:
        """`count` reader models, each trained as a click trains one over `pseudo_vectors`: two of
        `papers` marked "more", two "less", 400 of them as the background. With vectors that share
        no meaning, a model picks the papers it was shown "more" of, and not others."""
        texts = [embedding_text(paper.title, paper.abstract) for paper in papers]
        models = []
        for _ in range(count):
            examples = self.rng.sample(texts, 4)
            background = [text for text in texts[:400] if text not in examples]
            models.append(train(pseudo_vectors([*examples, *background]), 2, 2))
        return models

    def _written_differently(self, name: str) -> str:
        first, family = name.split(" ", 1)
        return self.rng.choice([name, f"{family}, {first}", f"{first[0]}. {family}", name.lower()])


def pseudo_vectors(texts: list[str]) -> np.ndarray:
    """Deterministic pseudo-random unit vectors, one per text (seeded by a hash of the text), in
    place of the stored sentence vectors: a run reads those (one query per chunk), it does not
    encode them, so the timing is of matching. Encoding is timed by bench/embedding.py."""
    vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        vector = np.random.default_rng(seed).standard_normal(DIMENSIONS, dtype=np.float32)
        vectors[row] = vector / np.linalg.norm(vector)
    return vectors


def store_pseudo_vectors(papers: list[tuple[str, str]], interests: list[str]) -> None:
    """Store `pseudo_vectors` as the sentence vectors of these papers (title, abstract) and
    interests, as ingestion and a saved interest store the real ones: benches of whole runs
    (bench/digests.py, bench/retention.py) then time runs that read vectors, not encode them."""
    from digest.matching.vectors import interest_text, stored_vectors

    texts = [embedding_text(title, abstract) for title, abstract in papers]
    texts += [text for text in map(interest_text, interests) if text]
    stored_vectors(texts, encode=pseudo_vectors)


def naive_seconds_per_subscriber(papers: list[PaperDoc], sample: list[dict]) -> float:
    texts = [f"{paper.title}\n{paper.abstract}" for paper in papers]
    started = time.process_time()
    for preferences in sample:
        query = parse_keywords(preferences["keywords"])
        include = [re.compile(r"\b" + re.escape(term.text) + r"\b", re.IGNORECASE) for term in query.include]
        exclude = [re.compile(r"\b" + re.escape(term.text) + r"\b", re.IGNORECASE) for term in query.exclude]
        for text in texts:
            if any(p.search(text) for p in include) and not any(p.search(text) for p in exclude):
                pass
    return (time.process_time() - started) / len(sample)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=settings.MATCH_CHUNK_SIZE)
    parser.add_argument("--naive-sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--liked-share", type=float, default=0.0, help="share of subscribers with 2 to 10 liked papers")
    parser.add_argument(
        "--clicked-share", type=float, default=0.0, help="share of subscribers with their own model (from clicks)"
    )
    args = parser.parse_args()

    generator = Generator(args.seed)
    papers = [generator.paper(number) for number in range(1, args.papers + 1)]
    # Drawn only when asked for, like liked lists; a few trained models, each subscriber's made
    # distinct by its bias so that no two subscribers share an evaluation (the dearest case).
    reader_models = generator.reader_models(20, papers) if args.clicked_share else []
    before_mb = peak_mb()
    print(
        f"generated {args.papers} papers from {len(generator.seeds)} seed abstracts; "
        f"{sum(map(len, generator.terms))} keyword candidates; peak before matching {before_mb:.0f} MB"
    )
    print(
        "sentence vectors: pseudo-random per text, as if stored (encoded once per paper at ingestion and "
        "once per interest when saved; bench/embedding.py times that): this times matching, not encoding"
    )

    wall_started = time.perf_counter()
    started = time.process_time()
    index = BatchIndex(papers, now=NOW, vectors=pseudo_vectors)
    index_seconds = time.process_time() - started
    generate_wall = 0.0
    matched = compile_seconds = match_seconds = 0.0
    unique = 0
    chunks = range(0, args.subscribers, args.chunk_size)
    for first in progress(chunks, len(chunks), "Subscriber chunks"):
        size = min(args.chunk_size, args.subscribers - first)
        generating = time.perf_counter()
        chunk = [generator.preferences() for _ in range(size)]  # generation is not timed
        # Drawn only when asked for, so that the default run generates exactly what it always did.
        liked = []
        if args.liked_share:
            liked = [generator.liked_papers() if generator.rng.random() < args.liked_share else () for _ in chunk]
        models: list[ReaderWeights | None] = []
        if args.clicked_share:
            models = [
                replace(generator.rng.choice(reader_models), bias=generator.rng.uniform(-3, -2))
                if generator.rng.random() < args.clicked_share
                else None
                for _ in chunk
            ]
        generate_wall += time.perf_counter() - generating
        tick = time.process_time()
        matchers = {first + offset: build_matcher(**preferences) for offset, preferences in enumerate(chunk)}
        if args.liked_share:
            matchers = {key: replace(matcher, liked=liked[key - first]) for key, matcher in matchers.items()}
        if args.clicked_share:
            matchers = {key: replace(matcher, reader=models[key - first]) for key, matcher in matchers.items()}
        tock = time.process_time()
        found = match_subscribers(matchers, index)
        compile_seconds += tock - tick
        match_seconds += time.process_time() - tock
        unique += len(set(matchers.values()))
        matched += sum(len(matches) for matches in found.values())
    seconds = index_seconds + compile_seconds + match_seconds
    wall_seconds = time.perf_counter() - wall_started - generate_wall
    pairs = args.subscribers * args.papers

    sample = [generator.preferences() for _ in range(args.naive_sample)]
    naive_per_subscriber = naive_seconds_per_subscriber(papers, sample)
    naive_seconds = naive_per_subscriber * args.subscribers
    speedup = naive_seconds / seconds
    peak = peak_mb()

    print(
        f"CPU seconds: index {index_seconds:.2f}, compile {compile_seconds:.2f}, match {match_seconds:.2f} "
        f"(chunks of {args.chunk_size}; {unique} distinct preference sets); wall clock {wall_seconds:.1f} s "
        f"({os.getloadavg()[0]:.1f} load average: other jobs share the CPUs when it exceeds the CPU time)"
    )
    print(
        f"{matched:.0f} matches stored ({matched / args.subscribers:.1f} per subscriber), "
        f"{pairs / seconds:,.0f} subscriber-paper pairs per second, {matched / seconds:,.0f} matches per second"
    )
    print(
        f"naive baseline: {naive_per_subscriber * 1000:.1f} ms per subscriber on a sample of {args.naive_sample}, "
        f"{naive_seconds:,.0f} s extrapolated to {args.subscribers} subscribers"
    )
    print(f"peak memory (max RSS) {peak:.0f} MB")
    threads = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in BLAS_THREAD_VARIABLES)
    print(f"BLAS threads: {threads}")
    print(
        f"subscribers={args.subscribers} papers={args.papers} seconds={seconds:.1f} "
        f"speedup_vs_naive={speedup:.0f} peak_mb={peak:.0f} wall_seconds={wall_seconds:.1f} "
        f"blas_threads={os.environ.get(BLAS_THREAD_VARIABLES[0], 'unset')}"
    )


if __name__ == "__main__":
    main()

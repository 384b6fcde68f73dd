"""Encoding cost: sentence vectors of papers and interests, beside the TF-IDF transform of the same texts.

    python bench/embedding.py --papers 60 --interests 200

A paper's vector is encoded once, after ingestion stores it (`digest.store_paper_vectors`), and an
interest's once, when it is saved (`digest.store_interest_vector`); match runs read the stored ones
(digest/matching/vectors.py). This prints what those encodings cost: CPU seconds per seed paper
(title and abstract, as `embedding_text` joins them) and per interest (a span of 8 to 25 words of a
seed abstract, as bench/matching.py draws interests), beside the baseline of the same run, the
TF-IDF transform of the same texts by a model fitted on the seed papers (what a run computes for
every text). Loading the model (once per process that encodes) is timed apart, with the resident memory it
adds. Every text is distinct: `encode` remembers texts it has seen. One BLAS thread, as a worker
(config/celery.py). The last line is machine-readable.
"""

import argparse
import os
import random
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from bench.relevance import seed_papers  # noqa: E402
from config.celery import BLAS_THREAD_VARIABLES  # noqa: E402
from digest.matching import embedding  # noqa: E402
from digest.matching.similarity import PaperSimilarity, paper_text  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    """The process's resident memory now (Linux), or its peak where /proc is missing."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return peak_mb()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def interests(abstracts: list[str], count: int, rng: random.Random) -> list[str]:
    """`count` distinct spans of 8 to 25 words of the abstracts' sentences."""
    sentences = [s for text in abstracts for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) > 8]
    found: set[str] = set()
    while len(found) < count:
        words = rng.choice(sentences).split()
        start = rng.randrange(max(1, len(words) - 8))
        found.add(" ".join(words[start : start + rng.randint(8, 25)]))
    return sorted(found)


def per_text(work, texts: list[str]) -> float:
    started = time.process_time()
    work(texts)
    return (time.process_time() - started) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, default=60, help="seed papers encoded (at most the seed page's)")
    parser.add_argument("--interests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    seeds = seed_papers()[: args.papers]
    paper_texts = [embedding.embedding_text(paper.title, paper.abstract) for paper in seeds]
    interest_texts = interests([paper.abstract for paper in seed_papers()], args.interests, random.Random(args.seed))
    before_mb = resident_mb()

    started = time.process_time()
    embedding.encoder()
    load_seconds = time.process_time() - started
    model_mb = resident_mb() - before_mb

    tfidf = PaperSimilarity([paper_text(paper.title, paper.abstract) for paper in seed_papers()]).model
    paper_seconds = per_text(embedding.encode, paper_texts)
    interest_seconds = per_text(embedding.encode, interest_texts)
    paper_tfidf = per_text(tfidf.transform, paper_texts)
    interest_tfidf = per_text(tfidf.transform, interest_texts)
    tokens = sum(len(embedding.encoder().tokenizer.ids(text)) for text in paper_texts) / len(paper_texts)

    print(f"model loaded in {load_seconds:.2f} CPU s, resident memory up {model_mb:.0f} MB (peak {peak_mb():.0f} MB)")
    print(
        f"papers: {len(paper_texts)} seed titles and abstracts, {tokens:.0f} word pieces on average "
        f"(cut at {embedding.MAX_TOKENS}): "
        f"{paper_seconds * 1000:.1f} ms each to encode, {paper_tfidf * 1000:.2f} ms each for the TF-IDF transform "
        f"({paper_seconds / paper_tfidf:.0f}x); 2,000 papers: {2000 * paper_seconds:.0f} s, once, at ingestion"
    )
    print(
        f"interests: {len(interest_texts)} spans of 8 to 25 words: {interest_seconds * 1000:.1f} ms each to encode, "
        f"{interest_tfidf * 1000:.2f} ms each for the TF-IDF transform ({interest_seconds / interest_tfidf:.0f}x); "
        f"60,000 interests: {60000 * interest_seconds / 60:.0f} min, once each, when saved"
    )
    threads = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in BLAS_THREAD_VARIABLES)
    print(f"BLAS threads: {threads}")
    print(
        f"papers={len(paper_texts)} interests={len(interest_texts)} paper_ms={paper_seconds * 1000:.1f} "
        f"interest_ms={interest_seconds * 1000:.1f} paper_tfidf_ms={paper_tfidf * 1000:.2f} "
        f"interest_tfidf_ms={interest_tfidf * 1000:.2f} load_seconds={load_seconds:.2f} model_mb={model_mb:.0f}"
    )


if __name__ == "__main__":
    main()

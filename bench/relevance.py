"""Matching quality on labelled sets: precision, recall, F1 and nDCG@10 per set, mode and reader.

    python bench/relevance.py [--set NAME ...] [--threshold 0.12] [--background N] [--write-guard]

Every set in bench/relevance/ (*.json with "readers") names its papers by arXiv id and the capture
in ../shared/feeds/ that holds them (the seed set: by title, in seeds/trending-papers.xml); the
text is read through the project's own feed parser. Each reader (keywords, a free-text interest
and a label per paper: relevant, borderline or not, see bench/relevance/RULES.md) is matched four
ways, the first three through the same code as a matching run (build_matcher / match_many):

    keywords      the reader's keywords alone
    description   the free-text interest alone
    both          keywords and interest
    regex         baseline: one case-insensitive whole-phrase regex per keyword, no stemming

A paper is predicted when it becomes a candidate (relevance >= RANKING_MIN_RELEVANCE). Borderline
papers count neither way in precision and recall; nDCG@10 grades them (relevant 3, borderline 1)
over the predicted papers in score order. Figures are micro-averaged over the readers of a set.

A set's "role" says what it is for: "fit" sets are the ones weights, thresholds and rules may be
chosen on; "held-out" sets are only reported, never tuned on; "worn" sets were held out until their
figures were published, and are fitted on since (bench/relevance/ROUND17-RULE.md): they test
nothing any more. Only the fit sets guard the code and shape the background. Each machine-readable
line names its set's role; the last gives the held-out set's `both` figures. --write-guard reports
the fit sets only (no worn or held-out set is read) and records their figures in
bench/relevance/guard.json, indexed alone and beside GUARD_BACKGROUND papers (see --background),
which tests/digest/matching/test_relevance_guard.py holds the code to.

--background N indexes every set as a matching run does, beside N other papers (a run's IDF and LSA
are fitted on the run's papers plus up to MATCH_IDF_PAPERS stored ones): the papers of the fit sets'
captures that no set labels, in the order of the captures. Without it a set is indexed alone, the
condition the models were fitted in.
"""

import argparse
import json
import math
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402
from django.apps import apps  # noqa: E402

if not apps.ready:
    django.setup()

from digest.matching.engine import BatchIndex, Matcher, PaperDoc, build_matcher, match_many  # noqa: E402
from digest.papers.cleaning import clean_abstract, clean_line, clean_text  # noqa: E402
from digest.papers.feed_parsing import parse_document  # noqa: E402
from seeds.build_seed_feed import read_papers  # noqa: E402
from subscribers.keywords import parse_keywords  # noqa: E402

SETS = Path(__file__).with_name("relevance")
GUARD = SETS / "guard.json"
SEED_PAGE = ROOT / "seeds" / "trending-papers-page.txt"
SEED_SOURCE = "seeds/trending-papers.xml"
MODES = ("keywords", "description", "both", "regex")
FIT, WORN, HELD_OUT = "fit", "worn", "held-out"
ROLES = (FIT, WORN, HELD_OUT)
GAIN = {"relevant": 3, "borderline": 1, "not": 0}
NDCG_DEPTH = 10
# The guard holds each fit set to its figures indexed alone and beside this many background papers:
# the models were fitted beside 1,000 (relevance_fit.py --background 1000), and a run's index holds
# its papers beside up to MATCH_IDF_PAPERS (2,000) stored ones.
GUARD_BACKGROUND = 1000
GUARD_CONDITIONS = {"alone": 0, f"background-{GUARD_BACKGROUND}": GUARD_BACKGROUND}

# Paper key (arXiv id; the title for the seed feed) -> (title, abstract, authors) of a capture.
Papers = dict[str, tuple[str, str, tuple[str, ...]]]


@dataclass
class Reader:
    name: str
    keywords: str
    interest: str
    labels: dict[int, str]  # paper position in the set -> relevant / borderline / not


@dataclass
class LabelledSet:
    name: str
    role: str
    papers: list[PaperDoc]
    readers: list[Reader]


@dataclass
class Score:
    """One reader's figures in one mode (papers the reader has not labelled are left out)."""

    hits: int = 0
    predicted: int = 0
    wanted: int = 0
    ndcg: float | None = None

    @property
    def precision(self) -> float:
        return self.hits / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.hits / self.wanted if self.wanted else 1.0


@dataclass
class Totals:
    hits: int = 0
    predicted: int = 0
    wanted: int = 0
    ndcgs: list[float] = field(default_factory=list)

    def add(self, score: Score) -> None:
        self.hits += score.hits
        self.predicted += score.predicted
        self.wanted += score.wanted
        if score.ndcg is not None:
            self.ndcgs.append(score.ndcg)

    def figures(self) -> dict[str, float]:
        precision = self.hits / self.predicted if self.predicted else 1.0
        recall = self.hits / self.wanted if self.wanted else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        ndcg = sum(self.ndcgs) / len(self.ndcgs) if self.ndcgs else 1.0
        return {"precision": precision, "recall": recall, "f1": f1, "ndcg10": ndcg}


def shared_feeds() -> Path:
    """../shared/feeds beside the clone (or a level further up from a git worktree)."""
    candidates = [folder / "shared" / "feeds" for folder in [ROOT, *ROOT.parents][:3]]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SystemExit(
        "bench/relevance.py reads the labelled papers' text from ../shared/feeds/, which is missing "
        f"(looked in {', '.join(map(str, candidates))}); the project does not ship other sites' data."
    )


def seed_papers() -> list[PaperDoc]:
    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    return [PaperDoc(id=number, title=title, abstract=abstract) for number, (title, abstract) in enumerate(pairs, 1)]


@cache
def source_papers(source: str) -> Papers:
    """Paper key (arXiv id; the title for the seed feed) -> (title, abstract, authors) of a capture."""
    path = ROOT / SEED_SOURCE if source == SEED_SOURCE else shared_feeds() / source
    if not path.is_file():
        raise SystemExit(f"{path} is missing: a labelled set names it as the source of its papers")
    if path.suffix == ".jsonl":
        return metadata_snapshot_papers(path)
    if path.read_bytes()[:400].find(b"<OAI-PMH") >= 0:
        return harvest_papers(path)
    parsed = parse_document(path.read_bytes())
    if parsed.error:
        raise SystemExit(f"{path}: {parsed.error}")
    return {
        (paper.title if source == SEED_SOURCE else paper.arxiv_id or paper.guid): (
            paper.title,
            paper.abstract,
            tuple(paper.authors),
        )
        for paper in parsed.papers
    }


OAI = "{http://www.openarchives.org/OAI/2.0/}"
OAI_ARXIV = "{http://arxiv.org/OAI/arXiv/}"
OAI_DC = "{http://www.openarchives.org/OAI/2.0/oai_dc/}"
DC = "{http://purl.org/dc/elements/1.1/}"
ABS_URL = re.compile(r"^https?://arxiv\.org/abs/(.+)$")


def harvest_papers(path: Path) -> Papers:
    """The papers of an OAI-PMH ListRecords page, read by the metadata format of its records (a
    resumption page does not repeat the request's metadataPrefix, so the records' namespace says)."""
    # A capture from ../shared/feeds (see its SOURCES.md), not data from the network.
    root = ET.parse(path).getroot()  # noqa: S314
    if root.find(f"{OAI}ListRecords/{OAI}record/{OAI}metadata/{OAI_DC}dc") is not None:
        return oai_dc_papers(path)
    return oai_pmh_papers(path)


def _record_metadata(path: Path, tag: str) -> Iterator[ET.Element]:
    """The metadata element `tag` of each record of a ListRecords page (a deleted record carries a
    header only and is left out)."""
    root = ET.parse(path).getroot()  # noqa: S314
    for record in root.iter(f"{OAI}record"):
        meta = record.find(f"{OAI}metadata/{tag}")
        if meta is not None:
            yield meta


def oai_pmh_papers(path: Path) -> Papers:
    """arXiv id -> (title, abstract, authors) of an OAI-PMH ListRecords page (metadataPrefix=arXiv).

    A bulk-harvest page is not a feed, so the project's feed parser does not read it; the fields are
    cleaned by the same functions the feed parser uses.
    """
    papers = {}
    for meta in _record_metadata(path, f"{OAI_ARXIV}arXiv"):
        authors = tuple(
            clean_text(f"{author.findtext(f'{OAI_ARXIV}forenames') or ''} {author.findtext(f'{OAI_ARXIV}keyname')}")
            for author in meta.iter(f"{OAI_ARXIV}author")
        )
        papers[clean_text(meta.findtext(f"{OAI_ARXIV}id"))] = (
            clean_text(meta.findtext(f"{OAI_ARXIV}title")),
            clean_abstract(meta.findtext(f"{OAI_ARXIV}abstract")),
            authors,
        )
    return papers


def oai_dc_papers(path: Path) -> Papers:
    """arXiv id -> (title, abstract, authors) of an OAI-PMH ListRecords page in Dublin Core
    (metadataPrefix=oai_dc): the id from the abs URL in dc:identifier, creators written "Last, First",
    the abstract the first dc:description (a later one holds the comments)."""
    papers = {}
    for meta in _record_metadata(path, f"{OAI_DC}dc"):
        urls = (ABS_URL.match(clean_line(node.text)) for node in meta.iter(f"{DC}identifier"))
        arxiv_id = next((url.group(1) for url in urls if url), None)
        if arxiv_id is None:
            continue
        authors = tuple(_first_last(clean_text(node.text)) for node in meta.iter(f"{DC}creator"))
        papers[arxiv_id] = (
            clean_text(meta.findtext(f"{DC}title")),
            clean_abstract(meta.findtext(f"{DC}description")),
            authors,
        )
    return papers


def _first_last(name: str) -> str:
    """A creator written "Last, First" as "First Last"; a name without a comma (a collaboration) as it is."""
    last, comma, first = name.partition(", ")
    return f"{first} {last}" if comma else name


def metadata_snapshot_papers(path: Path) -> Papers:
    """arXiv id -> (title, abstract, authors) of arXiv's metadata snapshot, one JSON record a line."""
    papers = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        authors = tuple(
            clean_text(" ".join(part for part in (first, last, suffix) if part))
            for last, first, suffix, *_ in record.get("authors_parsed") or []
        )
        papers[clean_line(record["id"])] = (clean_text(record["title"]), clean_abstract(record["abstract"]), authors)
    return papers


def load_set(path: Path) -> LabelledSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("role") not in ROLES:
        raise SystemExit(f"{path}: role must be one of {', '.join(map(repr, ROLES))}, not {data.get('role')!r}")
    papers: list[PaperDoc] = []
    position_of: dict[str, int] = {}
    for entry in data["papers"]:
        found = source_papers(entry["source"]).get(entry["id"])
        if found is None:
            raise SystemExit(f"{path}: paper {entry['id']} is not in {entry['source']}")
        if entry["id"] in position_of:
            continue
        title, abstract, authors = found
        position_of[entry["id"]] = len(papers)
        papers.append(PaperDoc(id=len(papers), title=title, abstract=abstract, authors=authors))
    readers = []
    for reader in data["readers"]:
        unknown = set(reader["labels"]) - set(position_of)
        if unknown:
            raise SystemExit(f"{path}: {reader['name']} labels papers not in the set: {sorted(unknown)[:5]}")
        bad = {label for label in reader["labels"].values() if label not in GAIN}
        if bad:
            raise SystemExit(f"{path}: {reader['name']} has labels other than {sorted(GAIN)}: {sorted(bad)}")
        labels = {position_of[key]: label for key, label in reader["labels"].items()}
        readers.append(Reader(reader["name"], reader.get("keywords", ""), reader.get("interest", ""), labels))
    return LabelledSet(name=data.get("name") or path.stem, role=data["role"], papers=papers, readers=readers)


def load_sets(names: Iterable[str] = (), roles: Iterable[str] = ()) -> list[LabelledSet]:
    """The sets so named (every set without names) whose role is among `roles` (any without): a set
    of another role is not loaded, so its papers are never read."""
    wanted, kept = set(names), set(roles)
    paths = _set_paths()
    missing = wanted - {path.stem for path in paths}
    if missing:
        raise SystemExit(f"no labelled set named {sorted(missing)} in {SETS}")
    return [
        load_set(path)
        for path in paths
        if (not wanted or path.stem in wanted) and (not kept or _set_role(path) in kept)
    ]


def _set_role(path: Path) -> str:
    return json.loads(path.read_text(encoding="utf-8")).get("role", "")


def matcher_for(reader: Reader, mode: str) -> Matcher:
    return build_matcher(
        keywords=reader.keywords if mode in ("keywords", "both") else "",
        interests=reader.interest if mode in ("description", "both") else "",
    )


def _phrase_pattern(text: str) -> re.Pattern[str]:
    return re.compile(r"\b" + r"\s+".join(map(re.escape, text.split())) + r"\b", re.IGNORECASE)


def regex_ranking(keywords: str, papers: Sequence[PaperDoc]) -> list[int]:
    """The baseline: papers where a wanted keyword occurs as a whole phrase and no excluded one does,
    those with the keyword in the title first."""
    query = parse_keywords(keywords)
    include = [_phrase_pattern(term.text) for term in query.include]
    exclude = [_phrase_pattern(term.text) for term in query.exclude]
    ranked = []
    for paper in papers:
        text = f"{paper.title}\n{paper.abstract}"
        found = sum(1 for pattern in include if pattern.search(text))
        if found and not any(pattern.search(text) for pattern in exclude):
            in_title = sum(1 for pattern in include if pattern.search(paper.title))
            ranked.append((-in_title, -found, paper.id))
    return [paper_id for *_, paper_id in sorted(ranked)]


def score(ranking: Sequence[int], labels: dict[int, str]) -> Score:
    judged = [paper for paper in ranking if paper in labels]
    predicted = [paper for paper in judged if labels[paper] != "borderline"]
    hits = sum(1 for paper in predicted if labels[paper] == "relevant")
    wanted = sum(1 for label in labels.values() if label == "relevant")
    ideal = sorted((GAIN[label] for label in labels.values()), reverse=True)[:NDCG_DEPTH]
    ideal_dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    dcg = sum(GAIN[labels[paper]] / math.log2(rank + 2) for rank, paper in enumerate(judged[:NDCG_DEPTH]))
    return Score(hits=hits, predicted=len(predicted), wanted=wanted, ndcg=dcg / ideal_dcg if ideal_dcg else None)


def background_papers(count: int) -> list[str]:
    """Up to `count` texts, as a run's background holds them, of the papers in the fit sets' captures
    that no labelled set (of any role) holds."""
    entries = [entry for path in _set_paths() for entry in json.loads(path.read_text(encoding="utf-8"))["papers"]]
    labelled = {entry["id"] for entry in entries}
    sources = dict.fromkeys(entry["source"] for entry in entries if _role(entry["source"]) == FIT)
    texts = [
        f"{title}. {abstract}"
        for source in sources
        for key, (title, abstract, _) in source_papers(source).items()
        if key not in labelled and abstract
    ]
    return texts[:count]


def _set_paths() -> list[Path]:
    return [path for path in sorted(SETS.glob("*.json")) if path != GUARD]


@cache
def _role(source: str) -> str:
    """FIT when a fit set draws papers from the capture, else HELD_OUT (a worn set's capture too:
    the background stays what it was when those sets were held out)."""
    for path in _set_paths():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["role"] == FIT and any(entry["source"] == source for entry in data["papers"]):
            return FIT
    return HELD_OUT


def evaluate(
    labelled: LabelledSet, threshold: float | None = None, background: Sequence[str] = ()
) -> dict[str, dict[str, Score]]:
    """mode -> reader name -> Score, every model mode through one batch index and one match_many."""
    index = BatchIndex(labelled.papers, background=background, similarity_threshold=threshold)
    model_modes = [mode for mode in MODES if mode != "regex"]
    matchers = [matcher_for(reader, mode) for mode in model_modes for reader in labelled.readers]
    found = iter(match_many(matchers, index, keep=len(labelled.papers)))
    figures: dict[str, dict[str, Score]] = {mode: {} for mode in MODES}
    for mode in model_modes:
        for reader in labelled.readers:
            figures[mode][reader.name] = score(next(found).paper_ids, reader.labels)
    for reader in labelled.readers:
        figures["regex"][reader.name] = score(regex_ranking(reader.keywords, labelled.papers), reader.labels)
    return figures


def micro(by_reader: dict[str, Score]) -> dict[str, float]:
    totals = Totals()
    for reader_score in by_reader.values():
        totals.add(reader_score)
    return totals.figures()


def _cell(figures: dict[str, float]) -> str:
    return "{precision:.2f}/{recall:.2f}/{f1:.2f}/{ndcg10:.2f}".format(**figures)


def report(labelled: LabelledSet, figures: dict[str, dict[str, Score]], readers: bool) -> None:
    papers = len(labelled.papers)
    labelled_pairs = sum(len(reader.labels) for reader in labelled.readers)
    print(
        f"\n== {labelled.name} ({labelled.role}): {papers} papers, {len(labelled.readers)} readers, "
        f"{labelled_pairs}/{papers * len(labelled.readers)} labels"
    )
    print(f"{'reader':26}" + "".join(f"{mode + ' P/R/F1/nDCG':>26}" for mode in MODES))
    if readers:
        for reader in labelled.readers:
            cells = [_cell(micro({reader.name: figures[mode][reader.name]})) for mode in MODES]
            print(f"{reader.name[:25]:26}" + "".join(f"{cell:>26}" for cell in cells))
    print(f"{'micro-average':26}" + "".join(f"{_cell(micro(figures[mode])):>26}" for mode in MODES))


def machine_line(name: str, role: str, mode: str, figures: dict[str, float]) -> str:
    return f"set={name} role={role} mode={mode} " + " ".join(f"{key}={value:.3f}" for key, value in figures.items())


def guard_background(condition: str) -> list[str]:
    """The background papers a guard condition indexes each set beside (none when alone)."""
    count = GUARD_CONDITIONS[condition]
    return background_papers(count) if count else []


def write_guard() -> None:
    """Record every fit set's figures, in every guard condition, at the default threshold."""
    guard = {
        labelled.name: {
            condition: {
                mode: {key: math.floor(value * 1000) / 1000 for key, value in micro(figures[mode]).items()}
                for mode in MODES
            }
            for condition in GUARD_CONDITIONS
            for figures in [evaluate(labelled, background=guard_background(condition))]
        }
        for labelled in load_sets(roles=(FIT,))
    }
    GUARD.write_text(json.dumps(guard, indent=1) + "\n", encoding="utf-8")
    print(f"\nrecorded in {GUARD.relative_to(ROOT)} (both mode; every mode is recorded):")
    for name, by_condition in guard.items():
        for condition, by_mode in by_condition.items():
            print(f"  {name} {condition}: " + " ".join(f"{key}={value:.3f}" for key, value in by_mode["both"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], help="only this set (repeatable)")
    parser.add_argument("--threshold", type=float, default=None, help="topic descriptions' similarity threshold")
    parser.add_argument("--no-readers", action="store_true", help="micro-averages only")
    parser.add_argument(
        "--write-guard", action="store_true", help="record the fit sets' figures (alone and beside a background)"
    )
    parser.add_argument("--background", type=int, default=0, help="index each set beside this many unlabelled papers")
    args = parser.parse_args()
    if args.write_guard and (args.background or args.threshold is not None):
        parser.error(
            f"the guard records every fit set at the default threshold, alone and beside {GUARD_BACKGROUND} papers: "
            "--write-guard without --background or --threshold"
        )
    background = background_papers(args.background) if args.background else []
    # The guard is the fit sets' alone: writing it reads no other set.
    sets = load_sets(args.set, roles=(FIT,) if args.write_guard else ())
    named = {role: ", ".join(s.name for s in sets if s.role == role) or "none" for role in ROLES}
    print(f"fit on (weights, thresholds and rules may be chosen here): {named[FIT]}")
    print(f"worn (held out until their figures were published; fitted on since): {named[WORN]}")
    print(f"held out (reported only, never tuned on): {named[HELD_OUT]}")
    print("cells: precision/recall/F1/nDCG@10; precision and recall micro-averaged, nDCG@10 averaged")
    if args.background:
        print(f"each set indexed beside {len(background)} unlabelled papers of the fit sets' captures")
    results = {}
    for labelled in sets:
        figures = evaluate(labelled, args.threshold, background)
        results[labelled.name] = (labelled, figures)
        report(labelled, figures, readers=not args.no_readers)
    print()
    for name, (labelled, figures) in results.items():
        for mode in MODES:
            print(machine_line(name, labelled.role, mode, micro(figures[mode])))
    if args.write_guard:
        write_guard()
    last = [s for s in sets if s.role == HELD_OUT] or sets
    if last:  # --write-guard with --set naming no fit set evaluates none
        labelled, figures = results[last[-1].name]
        print(machine_line(labelled.name, labelled.role, "both", micro(figures["both"])))


if __name__ == "__main__":
    main()

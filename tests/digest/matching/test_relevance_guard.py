"""The regression guard on matching quality: the fit sets' figures, indexed alone and beside a run's
background, may not fall below those recorded in bench/relevance/guard.json
(`python bench/relevance.py --write-guard` records them)."""

import json

import pytest

from bench import relevance
from bench.relevance import PaperDoc, load_set, micro, regex_ranking, score
from tests.support.shared import shared_folder

GUARDED = json.loads(relevance.GUARD.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("set_name", "condition"),
    [(name, condition) for name in sorted(GUARDED) for condition in sorted(GUARDED[name])],
)
def test_matching_quality_stays_at_or_above_the_recorded_figures(set_name, condition):
    if set_name != "seeds" or relevance.GUARD_CONDITIONS[condition]:
        shared_folder("feeds")  # skips (fails in CI) with a clear message when ../shared is missing
    labelled = load_set(relevance.SETS / f"{set_name}.json")
    figures = relevance.evaluate(labelled, background=relevance.guard_background(condition))
    fallen = [
        f"{mode} {key}: {measured[key]:.3f} < recorded {floor:.3f}"
        for mode, recorded in GUARDED[set_name][condition].items()
        for measured in [micro(figures[mode])]
        for key, floor in recorded.items()
        if measured[key] < floor - 1e-9
    ]
    assert not fallen, f"{set_name} {condition}: " + "; ".join(fallen)


def test_only_fit_sets_are_guarded():
    roles = {name: load_set(relevance.SETS / f"{name}.json").role for name in GUARDED}
    assert set(roles.values()) == {relevance.FIT}


def test_every_fit_set_is_guarded_alone_and_beside_the_background():
    shared_folder("feeds")
    fit_sets = {labelled.name for labelled in relevance.load_sets(roles=(relevance.FIT,))}
    assert set(GUARDED) == fit_sets
    assert all(set(GUARDED[name]) == set(relevance.GUARD_CONDITIONS) for name in fit_sets)
    assert len(relevance.guard_background("background-1000")) == 1000


def test_every_set_has_a_known_role_and_no_worn_or_held_out_set_is_guarded():
    roles = {path.stem: relevance._set_role(path) for path in relevance._set_paths()}
    assert set(roles.values()) <= set(relevance.ROLES)
    assert {name for name, role in roles.items() if role != relevance.FIT}.isdisjoint(GUARDED)


def write_set(folder, name, role, source, paper="A paper"):
    papers = [{"id": paper, "source": source}]
    data = {"name": name, "role": role, "papers": papers, "readers": []}
    (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def test_sets_of_roles_not_asked_for_are_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(relevance, "GUARD", tmp_path / "guard.json")
    seed = json.loads((relevance.SETS / "seeds.json").read_text(encoding="utf-8"))["papers"][0]
    monkeypatch.setattr(relevance, "SETS", tmp_path)
    write_set(tmp_path, "fitted", relevance.FIT, seed["source"], seed["id"])
    # Reading either would fail: their capture does not exist.
    write_set(tmp_path, "worn", relevance.WORN, "no-such-capture.xml")
    write_set(tmp_path, "unread", relevance.HELD_OUT, "no-such-capture.xml")
    assert [labelled.name for labelled in relevance.load_sets(roles=(relevance.FIT,))] == ["fitted"]
    with pytest.raises(SystemExit):
        relevance.load_sets(roles=(relevance.FIT, relevance.WORN))


def test_writing_the_guard_beside_a_named_set_of_another_role_reads_it_not_and_ends_cleanly(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(relevance, "SETS", tmp_path)
    write_set(tmp_path, "worn", relevance.WORN, "no-such-capture.xml")
    written = []
    monkeypatch.setattr(relevance, "write_guard", lambda: written.append(True))
    monkeypatch.setattr("sys.argv", ["relevance.py", "--write-guard", "--set", "worn"])
    relevance.main()
    assert written == [True]
    assert "fit on (weights, thresholds and rules may be chosen here): none" in capsys.readouterr().out


def test_a_set_of_an_unknown_role_is_refused(tmp_path):
    write_set(tmp_path, "tuned", "tuned", relevance.SEED_SOURCE)
    with pytest.raises(SystemExit, match="role must be one of 'fit', 'worn', 'held-out'"):
        load_set(tmp_path / "tuned.json")


def test_scores_leave_borderline_papers_out_of_precision_and_recall_and_grade_them_in_ndcg():
    labels = {0: "relevant", 1: "borderline", 2: "not", 3: "relevant"}
    found = score([1, 0, 2], labels)
    assert (found.hits, found.predicted, found.wanted) == (1, 2, 2)
    assert found.precision == 0.5 and found.recall == 0.5
    # DCG of gains 1, 3, 0 against the ideal 3, 3, 1.
    assert found.ndcg == pytest.approx((1 + 3 / 1.585) / (3 + 3 / 1.585 + 1 / 2), abs=1e-3)


def test_the_regex_baseline_matches_whole_phrases_only_and_honours_exclusions():
    papers = [
        PaperDoc(id=0, title="Neural fields", abstract="A neural field decoder."),
        PaperDoc(id=1, title="Fields", abstract="Neural fieldwork in medicine."),
        PaperDoc(id=2, title="Medical neural field", abstract="CT scans."),
        PaperDoc(id=3, title="Other", abstract="We use a neural   field."),
    ]
    # "Neural fields" and "fieldwork" are not the whole phrase; a title match ranks first.
    assert regex_ranking('"neural field", -medical', papers) == [0, 3]
    assert regex_ranking('"neural field"', papers) == [2, 0, 3]


def test_the_background_holds_no_labelled_paper_and_only_the_fit_sets_captures():
    shared_folder("feeds")
    sets = relevance.load_sets()
    labelled = {f"{paper.title}. {paper.abstract}" for labelled_set in sets for paper in labelled_set.papers}
    background = relevance.background_papers(300)
    assert len(background) == 300
    assert not labelled & set(background)
    fit_sources = {
        entry["source"]
        for path in relevance._set_paths()
        for data in [json.loads(path.read_text(encoding="utf-8"))]
        if data["role"] == relevance.FIT
        for entry in data["papers"]
    }
    fit_texts = {
        f"{title}. {abstract}"
        for source in fit_sources
        for title, abstract, _ in relevance.source_papers(source).values()
    }
    assert set(background) <= fit_texts

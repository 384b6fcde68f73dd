"""A reader's own model: trained from the papers they marked and liked, it picks papers like the
"more" ones ("More like papers you marked"), lowers others, and never lowers a paper matching the
reader's own keyword."""

import threading
from dataclasses import replace

import numpy as np
import pytest
from django.contrib import admin
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from digest.admin.subscribers import SubscriberAdmin
from digest.matching import embedding, reader_model
from digest.matching.engine import BatchIndex, Matcher, PaperDoc, build_matcher, match_many
from digest.matching.feedback import apply_feedback, undo_mark
from digest.matching.runs import match_recent_papers, subscriber_matcher
from digest.matching.vectors import store_paper_vectors, text_key, vectors_if_stored
from digest.models import LikedPaper, MarkedPaper, ReaderModel, TextVector
from subscribers.models import Subscriber
from subscribers.services import delete_subscriber
from subscribers.tokens import make_token
from tests.support.digest_samples import make_paper, make_subscriber, seed_papers
from tests.support.threads import in_thread

# Seed papers: the reader marked two video neural representations "more", a circuits paper "less".
MORE = (1, 5)  # NERV++, HNeRV
LESS = (7,)  # Circuit Component Reuse Across Tasks in Transformer Language Models
VIDEO = {2, 18, 43}  # NIRVANA, Progressive Fourier, Boosting Neural Representations for Videos
EXAMPLES = MORE + LESS


@pytest.fixture(scope="module")
def seeds():
    return seed_papers()


@pytest.fixture(scope="module")
def weights(seeds):
    vectors = embedding.encode([embedding.embedding_text(*paper) for paper in seeds])
    background = [number for number in range(len(seeds)) if number not in EXAMPLES]
    return reader_model.train(vectors[[*MORE, *LESS, *background]], len(MORE), len(LESS))


@pytest.fixture(scope="module")
def index(seeds):
    return BatchIndex([PaperDoc(id=n, title=t, abstract=a) for n, (t, a) in enumerate(seeds) if n not in EXAMPLES])


def test_the_model_is_one_weight_per_dimension_of_the_sentence_vector(weights):
    assert len(weights.weights) == reader_model.WEIGHT_BYTES
    assert weights.array().shape == (embedding.DIMENSIONS,) and np.isfinite(weights.array()).all()


def test_the_model_ranks_papers_like_the_marked_ones_first(weights, index):
    above = reader_model.standardized(reader_model.logits(weights, index))

    top = set(index.ids[np.argsort(-above)[:4]].tolist())

    assert len(top & VIDEO) >= 2


def test_a_models_logit_is_its_bias_plus_its_weights_times_the_papers_vectors(weights, index):
    biased = replace(weights, bias=-1.0)
    expected = index.paper_vectors.astype(np.float64) @ weights.array().astype(np.float64) - 1

    np.testing.assert_allclose(reader_model.logits(biased, index), expected, rtol=1e-5, atol=1e-5)


def readers_like(weights: reader_model.ReaderWeights, count: int) -> list[reader_model.ReaderWeights]:
    """`count` models made from one: each its own bias, and its own weights."""
    rng = np.random.default_rng(3)
    readers = []
    for _ in range(count):
        scaled = weights.array() * rng.uniform(-1, 2, size=embedding.DIMENSIONS)
        readers.append(
            reader_model.ReaderWeights(
                weights=scaled.astype(reader_model.WEIGHT_DTYPE).tobytes(), bias=float(rng.uniform(-3, 0))
            )
        )
    return readers


def test_a_readers_logits_are_the_same_to_the_last_bit_alone_or_in_any_chunk(weights, index):
    readers = readers_like(weights, 500)

    chunk = reader_model.reader_logits(readers, index)
    other_chunk = reader_model.reader_logits(readers[:100][::-1], index)

    assert chunk.shape == (500, index.size) and chunk.dtype == np.float32
    for number, reader in enumerate(readers):
        np.testing.assert_array_equal(chunk[number], reader_model.logits(reader, index))
    np.testing.assert_array_equal(other_chunk[::-1], chunk[:100])


def test_readers_matched_together_match_as_each_alone(weights, index):
    matchers = [
        replace(build_matcher(**preferences), reader=reader)
        for preferences, reader in zip(
            [{}, {"keywords": "circuit"}, {"interests": "video compression with neural representations"}] * 4,
            readers_like(weights, 12),
            strict=True,
        )
    ]

    together = match_many(matchers, index, keep=index.size)

    assert any("marked" in reason for matches in together for reason in matches.reasons)
    assert [list(matches) for matches in together] == [
        list(match_many([matcher], index, keep=index.size)[0]) for matcher in matchers
    ]


def test_papers_the_model_picks_say_so_and_only_those(weights, index):
    found = match_many([Matcher(reader=weights)], index, keep=index.size)[0]

    picked = {paper for paper, reason in zip(found.paper_ids, found.reasons, strict=True) if "marked" in reason}
    assert picked and picked <= VIDEO
    assert all(reason == "More like papers you marked" for reason in found.reasons)


def test_the_model_never_lowers_a_paper_matching_the_readers_own_keyword(weights, index):
    """The model dislikes circuits papers (one was marked "less"); the reader's own keyword wins."""
    own = build_matcher(keywords="circuit", interests="interpretability of language models")
    alone, with_model = match_many([own, Matcher(**{**vars(own), "reader": weights})], index, keep=index.size)

    relevance = dict(zip(with_model.paper_ids, with_model.relevance, strict=True))
    holding = [
        paper for paper, reason in zip(alone.paper_ids, alone.reasons, strict=True) if "keyword 'circuit'" in reason
    ]
    assert holding
    for paper in holding:
        assert relevance[paper] >= dict(zip(alone.paper_ids, alone.relevance, strict=True))[paper]


def test_the_model_lowers_other_papers_unlike_the_marked_ones(weights, index):
    interest = build_matcher(interests="vision transformers and language models")
    alone, with_model = match_many([interest, Matcher(**{**vars(interest), "reader": weights})], index, keep=index.size)

    after = dict(zip(with_model.paper_ids, with_model.relevance, strict=True))
    lowered = {
        paper for paper, before in zip(alone.paper_ids, alone.relevance, strict=True) if after.get(paper, 0) < before
    }
    assert lowered and not lowered & VIDEO


def stored_seed_papers(seeds) -> list:
    """The seed papers stored, their vectors too (as ingestion stores them)."""
    papers = [make_paper(n, title, abstract) for n, (title, abstract) in enumerate(seeds)]
    store_paper_vectors([paper.pk for paper in papers])
    return papers


def reader_who_clicked_more(seeds) -> tuple[Subscriber, list]:
    """The seed papers stored, and a reader who clicked "more" on the MORE papers."""
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="")
    for n in MORE:
        apply_feedback(reader, papers[n], "more")
    return reader, papers


@pytest.mark.django_db
def test_clicks_train_the_model_a_run_uses_and_its_reason_counts_liked_papers_truthfully(seeds):
    reader, papers = reader_who_clicked_more(seeds)

    loaded = Subscriber.objects.select_related("reader_model").get(pk=reader.pk)
    matcher = subscriber_matcher(loaded)
    assert matcher.reader is not None and matcher.reader.reason == "more like papers you marked"

    LikedPaper.objects.create(subscriber=reader, paper=papers[43], state=LikedPaper.State.KNOWN)
    reader_model.retrain(reader)
    stored = ReaderModel.objects.get(subscriber=reader)
    assert (stored.positives, stored.from_liked) == (3, True)
    loaded = Subscriber.objects.select_related("reader_model").get(pk=reader.pk)
    assert subscriber_matcher(loaded).reader.reason == "more like papers you liked and marked"


@pytest.mark.django_db
def test_a_liked_list_alone_trains_no_model(seeds):
    papers = [make_paper(n, title, abstract) for n, (title, abstract) in enumerate(seeds[:10])]
    reader = make_subscriber(keywords="")
    for n in MORE:
        LikedPaper.objects.create(subscriber=reader, paper=papers[n], state=LikedPaper.State.KNOWN)

    assert reader_model.retrain(reader) is None
    assert not ReaderModel.objects.exists()


def model_score(reader: Subscriber, text: str) -> float:
    """The reader's stored model's logit, bias aside, for a text's sentence vector."""
    stored = ReaderModel.objects.get(subscriber=reader)
    return float(np.frombuffer(bytes(stored.weights), reader_model.WEIGHT_DTYPE) @ embedding.encode([text])[0])


@pytest.mark.django_db
def test_the_re_match_a_change_of_words_queues_retrains_the_model_with_them(seeds):
    reader, _ = reader_who_clicked_more(seeds)
    before = model_score(reader, "audio spectrograms")

    Subscriber.objects.filter(pk=reader.pk).update(interests="audio spectrograms")
    match_recent_papers(reader.pk)

    assert model_score(reader, "audio spectrograms") > before


@pytest.mark.django_db
def test_the_re_match_learns_the_words_a_reader_saved_while_it_encoded_their_examples(seeds, monkeypatch):
    """The re-match reads the reader, then encodes their missing vectors for seconds before taking
    their row: a change saved meanwhile queues the next re-match, which may well finish first. The
    model stored last must learn the words saved last, not those the slower one read."""
    reader, papers = reader_who_clicked_more(seeds)
    TextVector.objects.filter(
        key=text_key(embedding.embedding_text(papers[MORE[0]].title, papers[MORE[0]].abstract))
    ).delete()
    encode = embedding.encode

    def encode_while_the_reader_saves(texts):
        Subscriber.objects.filter(pk=reader.pk).update(interests="audio spectrograms")
        return encode(texts)

    monkeypatch.setattr(embedding, "encode", encode_while_the_reader_saves)
    match_recent_papers(reader.pk)
    learned = bytes(ReaderModel.objects.get(subscriber=reader).weights)

    reader_model.retrain(Subscriber.objects.get(pk=reader.pk))  # what the next re-match stores
    assert bytes(ReaderModel.objects.get(subscriber=reader).weights) == learned


def relevance_for(reader: Subscriber, index: BatchIndex) -> dict[int, float]:
    """Paper id -> relevance, for the reader as a run matches them."""
    loaded = Subscriber.objects.select_related("reader_model").get(pk=reader.pk)
    found = match_many([subscriber_matcher(loaded)], index, keep=index.size)[0]
    return dict(zip(found.paper_ids, found.relevance, strict=True))


@pytest.mark.django_db
def test_clicks_raise_papers_like_the_clicked_ones_and_no_others_and_undoing_them_takes_that_back(seeds):
    papers = stored_seed_papers(seeds)
    index = BatchIndex(
        [
            PaperDoc(id=paper.pk, title=paper.title, abstract=paper.abstract)
            for paper in papers
            if paper.pk not in {papers[n].pk for n in EXAMPLES}
        ]
    )
    reader = make_subscriber(keywords="", interests="")
    before = relevance_for(reader, index)

    for n, direction in [*((n, "more") for n in MORE), *((n, "less") for n in LESS)]:
        apply_feedback(reader, papers[n], direction)
    after = relevance_for(reader, index)

    raised = {paper for paper, relevance in after.items() if relevance > before.get(paper, 0.0)}
    assert raised and raised <= {papers[n].pk for n in VIDEO}
    for marked in MarkedPaper.objects.filter(subscriber=reader):
        assert undo_mark(Subscriber.objects.get(pk=reader.pk), marked.pk)
    assert not ReaderModel.objects.filter(subscriber=reader).exists()
    assert relevance_for(reader, index) == before


@pytest.mark.django_db
def test_a_stored_model_that_is_not_one_weight_per_dimension_is_no_model(seeds):
    reader = make_subscriber(keywords="")
    ReaderModel.objects.create(subscriber=reader, weights=b"\x00" * 12, bias=1.0, positives=2)

    loaded = Subscriber.objects.select_related("reader_model").get(pk=reader.pk)

    assert subscriber_matcher(loaded).reader is None


@pytest.mark.django_db
def test_a_click_encodes_its_examples_when_missing_and_never_the_background(seeds, monkeypatch):
    """The background is the newest papers whose vectors are stored: the others are left out, not
    encoded while the reader waits for the click's page."""
    papers = [make_paper(n, title, abstract) for n, (title, abstract) in enumerate(seeds[:20])]
    store_paper_vectors([paper.pk for paper in papers[10:]])
    reader = make_subscriber(keywords="", interests="")
    encoded: list[str] = []
    encode = embedding.encode
    monkeypatch.setattr(embedding, "encode", lambda texts: encoded.extend(texts) or encode(texts))

    for n, direction in ((1, "more"), (5, "more"), (7, "less")):
        apply_feedback(reader, papers[n], direction)

    texts = {embedding.embedding_text(paper.title, paper.abstract): n for n, paper in enumerate(papers)}
    assert {texts[text] for text in encoded} == {1, 5, 7}
    assert len(vectors_if_stored(list(texts))) == 13  # the ten stored, and the three clicked
    assert ReaderModel.objects.get(subscriber=reader).positives == 2


@pytest.mark.django_db
def test_a_click_reads_its_examples_stored_vectors_once(seeds):
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="", interests="")
    apply_feedback(reader, papers[MORE[0]], "more")
    apply_feedback(reader, papers[LESS[0]], "less")

    with CaptureQueriesContext(connection) as context:
        apply_feedback(reader, papers[MORE[1]], "more")

    reads = [query["sql"] for query in context.captured_queries if 'FROM "digest_textvector"' in query["sql"]]
    assert len(reads) == 2  # the examples' vectors, the background's
    assert len(context.captured_queries) == 19
    assert ReaderModel.objects.get(subscriber=reader).positives == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("weight", "bias"), [(np.inf, 0.0), (np.nan, 0.0), (1.0, float("inf"))], ids=["inf", "nan", "bias"]
)
def test_a_stored_model_whose_numbers_are_not_finite_is_no_model(weight, bias):
    """A corrupted row would otherwise pick papers at random (an infinite logit is PICK above any
    median) or lower them: it is read as no model, as vectors.py reads a corrupted vector."""
    weights = np.zeros(embedding.DIMENSIONS, dtype=reader_model.WEIGHT_DTYPE)
    weights[3] = weight
    reader = make_subscriber(keywords="")
    ReaderModel.objects.create(subscriber=reader, weights=weights.tobytes(), bias=bias, positives=2)

    loaded = Subscriber.objects.select_related("reader_model").get(pk=reader.pk)

    assert subscriber_matcher(loaded).reader is None


@pytest.mark.django_db
def test_a_click_encodes_at_most_a_few_missing_examples_and_a_worker_the_rest(seeds, monkeypatch):
    """A reader's old clicks' vectors go when no run reads them for RETENTION_DAYS: the click that
    follows must not encode them all (0.1 s each) while the reader waits, nor hold their lock that
    long. It learns from what is stored and a few more; the re-match a worker runs learns from all."""
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="", interests="")
    for n in range(30):
        MarkedPaper.objects.create(subscriber=reader, paper=papers[n], direction="more")
    TextVector.objects.all().delete()  # retention deleted them
    store_paper_vectors([papers[30].pk])  # the paper clicked now came with a recent run
    encoded: list[str] = []
    encode = embedding.encode
    monkeypatch.setattr(embedding, "encode", lambda texts: encoded.extend(texts) or encode(texts))

    apply_feedback(reader, papers[30], "less")

    assert 0 < len(encoded) <= reader_model.ENCODED_AT_A_CLICK
    stored = ReaderModel.objects.get(subscriber=reader)
    assert (stored.positives, stored.negatives) == (30, 1) and len(stored.weights) == reader_model.WEIGHT_BYTES
    examples = [embedding.embedding_text(paper.title, paper.abstract) for paper in papers[:31]]
    assert len(vectors_if_stored(examples)) == 1 + reader_model.ENCODED_AT_A_CLICK

    match_recent_papers(reader.pk)

    assert len(vectors_if_stored(examples)) == 31


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_undo_waits_for_a_click_of_the_same_reader_to_commit(on_postgres):
    reader = make_subscriber(keywords="", interests="")
    papers = [make_paper(n, *seed_papers()[n]) for n in MORE]
    apply_feedback(reader, papers[0], "more")
    marked = MarkedPaper.objects.get(subscriber=reader)
    clicking, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def a_click_in_its_transaction():  # apply_feedback holds the reader's row until it commits
        with transaction.atomic():
            Subscriber.objects.select_for_update().get(pk=reader.pk)
            clicking.set()
            release.wait(10)

    click = in_thread(a_click_in_its_transaction, results, "click")
    assert clicking.wait(30)
    undo = in_thread(lambda: undo_mark(Subscriber.objects.get(pk=reader.pk), marked.pk), results, "undo")
    undo.join(0.5)
    waited = undo.is_alive()
    release.set()
    click.join(30)
    undo.join(30)

    assert waited
    assert results["undo"] is True


def unlike_by_the_manage_page(reader: Subscriber, liked: LikedPaper) -> None:
    token = make_token(reader, "manage")
    response = Client().post(reverse("digest:remove_liked", args=[token, liked.pk]))
    assert response.status_code == 302


def unlike_and_re_match(reader: Subscriber, liked: LikedPaper) -> None:
    """Any change the re-match follows (here the liked paper gone) has the worker retrain."""
    liked.delete()
    match_recent_papers(reader.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("retraining", [unlike_by_the_manage_page, unlike_and_re_match], ids=["unlike", "re-match"])
def test_on_postgresql_a_retraining_beside_a_click_stores_a_model_that_learned_both(seeds, retraining, on_postgres):
    """The retraining waits for the reader's row, which a click holds to its commit, and then reads
    the click's mark: a model stored without that lock missed the click until the next retraining."""
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="", interests="")
    apply_feedback(reader, papers[MORE[0]], "more")
    apply_feedback(reader, papers[LESS[0]], "less")
    liked = LikedPaper.objects.create(subscriber=reader, paper=papers[43], state=LikedPaper.State.KNOWN)
    reader_model.retrain(reader)
    clicking, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def a_click_committed_late():
        with transaction.atomic():
            apply_feedback(Subscriber.objects.get(pk=reader.pk), papers[MORE[1]], "more")
            clicking.set()
            release.wait(10)

    click = in_thread(a_click_committed_late, results, "click")
    assert clicking.wait(60)
    other = in_thread(lambda: retraining(Subscriber.objects.get(pk=reader.pk), liked), results, "retraining")
    other.join(1.0)
    waited = other.is_alive()
    release.set()
    click.join(30)
    other.join(60)

    assert waited and "retraining" in results
    stored = ReaderModel.objects.get(subscriber=reader)
    assert (stored.positives, stored.negatives, stored.from_liked) == (2, 1, False)


def waiting_for_a_lock() -> int:
    """Other connections to the test database now waiting for a lock another transaction holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _admin_deletes_one(subscriber: Subscriber) -> None:
    SubscriberAdmin(Subscriber, admin.site).delete_model(None, subscriber)


def _admin_deletes_selected(subscriber: Subscriber) -> None:
    SubscriberAdmin(Subscriber, admin.site).delete_queryset(None, Subscriber.objects.filter(pk=subscriber.pk))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("erase", [delete_subscriber, _admin_deletes_one, _admin_deletes_selected])
def test_on_postgresql_erasing_a_reader_beside_their_retraining_waits_for_it_and_erases_everything(
    seeds, on_postgres, erase
):
    """A retraining holds the reader's row from its start and writes their model at its end (a
    click, an undo, the re-match). An erasure that deleted the model first and the row last waited
    for the retraining while the retraining waited for it: PostgreSQL aborted one of them. The
    reader's own erasure and the admin's delete (one, or the selected) take the same way."""
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="", interests="")
    apply_feedback(reader, papers[MORE[0]], "more")
    apply_feedback(reader, papers[LESS[0]], "less")
    locked, erasing = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def a_retraining_under_the_row_lock():  # as undo_mark: the reader's row, then the retraining
        with transaction.atomic():
            Subscriber.objects.select_for_update().get(pk=reader.pk)
            locked.set()
            erasing.wait(10)
            return reader_model.retrain(reader)

    retraining = in_thread(a_retraining_under_the_row_lock, results, "retraining")
    assert locked.wait(30)
    erasure = in_thread(lambda: erase(Subscriber.objects.get(pk=reader.pk)), results, "erase")
    for _ in range(200):
        if waiting_for_a_lock():
            break
        threading.Event().wait(0.05)
    erasing.set()
    retraining.join(30)
    erasure.join(30)

    assert "retraining" in results and "erase" in results
    assert not Subscriber.objects.filter(pk=reader.pk).exists()
    assert not ReaderModel.objects.exists() and not MarkedPaper.objects.exists()


@pytest.mark.django_db
def test_a_retraining_allowed_no_encoding_still_learns_from_one_missing_positive(seeds):
    """encode_at_most=0 with every example's vector gone: the first missing example (a positive,
    as positives come first) is still encoded, so training has a positive to learn from."""
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="", interests="")
    MarkedPaper.objects.create(subscriber=reader, paper=papers[0], direction="more")
    MarkedPaper.objects.create(subscriber=reader, paper=papers[1], direction="less")
    TextVector.objects.all().delete()

    model = reader_model.retrain(reader, encode_at_most=0)

    assert model is not None and (model.positives, model.negatives) == (1, 1)
    assert np.isfinite(np.frombuffer(model.weights, dtype=reader_model.WEIGHT_DTYPE)).all()


@pytest.mark.django_db(transaction=True)
def test_the_re_match_encodes_the_readers_missing_examples_outside_any_transaction(seeds, monkeypatch):
    """Encoding a reader's examples takes seconds once retention deleted their vectors: never while
    the reader's row is locked (every click of theirs would wait)."""
    papers = stored_seed_papers(seeds)
    reader = make_subscriber(keywords="", interests="")
    for n in range(12):
        MarkedPaper.objects.create(subscriber=reader, paper=papers[n], direction="more" if n % 3 else "less")
    TextVector.objects.all().delete()
    encoded: list[tuple[str, bool]] = []
    encode = embedding.encode
    monkeypatch.setattr(
        embedding,
        "encode",
        lambda texts: encoded.extend((text, connection.in_atomic_block) for text in texts) or encode(texts),
    )

    match_recent_papers(reader.pk)

    examples = {embedding.embedding_text(paper.title, paper.abstract) for paper in papers[:12]}
    assert {text for text, _ in encoded} >= examples
    assert [text for text, inside in encoded if text in examples and inside] == []
    assert ReaderModel.objects.get(subscriber=reader).positives == 8

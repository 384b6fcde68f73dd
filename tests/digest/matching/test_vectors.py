"""Sentence vectors are encoded once per text, stored, and read by runs (digest/matching/vectors.py).

The encoder counted is the real one (embedding.encode) behind a counting wrapper: the vectors are
the model's, and a test can say how many texts were encoded.
"""

import contextlib
import threading
import time
from datetime import date, timedelta

import numpy as np
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction

from digest.delivery.retention import purge_old_rows
from digest.matching import embedding, runs, vectors
from digest.matching.runs import match_chunk, start_match_run
from digest.matching.vectors import interest_text, stored_vectors, text_key
from digest.models import Candidate, Paper, ReaderModel, TextVector
from digest.papers.feed_limits import MAX_ABSTRACT_CHARS
from digest.papers.feed_parsing import ParsedPaper
from digest.papers.paper_store import store_papers
from digest.tasks import vectors as vector_tasks
from digest.tasks.ingest import ingest_feeds
from subscribers import services
from subscribers.forms import PreferencesForm
from subscribers.models import Subscriber
from tests.support.threads import in_thread

pytestmark = pytest.mark.django_db

TEXTS = [
    "Neural Scene Flow Prior. We estimate scene flow with a neural field.",
    "Reinforcement learning for LLM post-training",
    "Neural Scene Flow Prior. We estimate scene flow with a neural field.",  # twice: one row, one encoding
]
ENCODE = embedding.encode  # the real encoder, which the `encoder` fixture wraps
RSS_LG = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"
TODAY = date(2026, 11, 26)


class CountingEncoder:
    """embedding.encode, counting the texts it is asked for."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, texts):
        self.texts += list(texts)
        return ENCODE(texts)


@pytest.fixture
def encoder(monkeypatch):
    """Every encoding in the test goes through a counting wrapper around the real encoder."""
    counting = CountingEncoder()
    monkeypatch.setattr(embedding, "encode", counting)
    return counting


@pytest.fixture(autouse=True)
def _fresh_index_cache():
    runs.clear_index_cache()
    yield
    runs.clear_index_cache()


def stored_keys():
    return {bytes(key) for key in TextVector.objects.values_list("key", flat=True)}


def make_paper(number, title, abstract):
    return Paper.objects.create(
        guid=f"urn:test:{number}", arxiv_id=f"2611.{number:05d}", title=title, abstract=abstract
    )


def test_vectors_are_the_encoders_and_are_stored_once_per_text(encoder):
    found = stored_vectors(TEXTS)

    assert np.array_equal(found, ENCODE(TEXTS))
    assert sorted(encoder.texts) == sorted(TEXTS[:2])  # each text once
    assert stored_keys() == {text_key(TEXTS[0]), text_key(TEXTS[1])}
    row = TextVector.objects.get(key=text_key(TEXTS[1]))
    assert len(row.vector) == embedding.DIMENSIONS * 4
    assert np.array_equal(np.frombuffer(row.vector, dtype="<f4"), found[1])


def test_a_second_call_encodes_nothing_and_makes_one_query(encoder, django_assert_num_queries):
    first = stored_vectors(TEXTS)
    encoder.texts.clear()
    with django_assert_num_queries(1):
        second = stored_vectors(TEXTS)
    assert encoder.texts == []
    assert np.array_equal(first, second)


def test_the_key_names_the_model_so_another_models_vectors_never_answer(monkeypatch):
    key = text_key(TEXTS[1])
    monkeypatch.setattr(embedding, "MODEL_NAME", "another-model")
    assert text_key(TEXTS[1]) != key


def test_a_worker_that_stored_the_same_text_first_does_not_fail_the_other(encoder):
    def other_worker_finishing_first(texts):
        stored_vectors(texts, encode=ENCODE)  # between this one's read and its insert
        return ENCODE(texts)

    found = stored_vectors(TEXTS[:2], encode=other_worker_finishing_first)

    assert np.array_equal(found, ENCODE(TEXTS[:2]))
    assert TextVector.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_two_workers_storing_the_same_text_at_once_both_succeed(on_postgres):
    inserted, release = threading.Event(), threading.Event()
    results: dict[str, np.ndarray] = {}

    def first_worker():
        with transaction.atomic():  # a chunk's transaction: the row is not committed yet
            found = stored_vectors(TEXTS[:2])
            inserted.set()
            release.wait(10)
        return found

    first = in_thread(first_worker, results, "first")
    assert inserted.wait(30)
    second = in_thread(lambda: stored_vectors(TEXTS[:2]), results, "second")
    second.join(0.5)
    release.set()
    first.join(30)
    second.join(30)

    assert np.array_equal(results["first"], results["second"])
    assert TextVector.objects.count() == 2


@pytest.mark.parametrize(
    "blob",
    [b"\x00" * 10, b"", np.full(embedding.DIMENSIONS, np.nan, dtype="<f4").tobytes()],
    ids=["short", "empty", "not-finite"],
)
def test_a_corrupted_vector_is_encoded_again_not_trusted(encoder, blob):
    expected = stored_vectors(TEXTS[:2])
    TextVector.objects.filter(key=text_key(TEXTS[1])).update(vector=blob)
    encoder.texts.clear()

    found = stored_vectors(TEXTS[:2])

    assert encoder.texts == [TEXTS[1]]
    assert np.array_equal(found, expected)
    row = TextVector.objects.get(key=text_key(TEXTS[1]))
    assert bytes(row.vector) == expected[1].astype("<f4").tobytes()


def test_reading_a_vector_marks_it_used_today_once_a_day(django_assert_num_queries):
    with time_machine.travel("2026-11-20 08:00Z"):
        stored_vectors(TEXTS[:2])
    with time_machine.travel("2026-11-26 08:00Z"):
        with django_assert_num_queries(2):  # the read, one UPDATE for both
            stored_vectors(TEXTS[:2])
        with django_assert_num_queries(1):
            stored_vectors(TEXTS[:2])
    assert set(TextVector.objects.values_list("used_on", flat=True)) == {TODAY}


def test_retention_purges_vectors_unused_for_retention_days_and_keeps_the_others(settings):
    settings.RETENTION_DAYS = 60
    old, recent = ["an old paper nobody matched", "an interest paused long ago"], ["a paper of this week"]
    with time_machine.travel(TODAY - timedelta(days=61)):
        stored_vectors([*old, *recent])
    with time_machine.travel(TODAY - timedelta(days=3)):
        stored_vectors(recent)  # a run read it: used again

    with time_machine.travel("2026-11-26 08:00Z"):
        purged = purge_old_rows(batch_size=1)

    assert purged.text_vectors == 2
    assert stored_keys() == {text_key(recent[0])}


def _papers_and_a_reader():
    make_paper(1, "Diffusion models for images", "We denoise images with a diffusion model.")
    make_paper(2, "Graph colouring", "We colour sparse graphs with few colours.")
    Subscriber.objects.create(
        email="ada@example.org", status=Subscriber.Status.ACTIVE, interests="image generation with diffusion"
    )


def _run() -> int:
    plan = start_match_run(all_papers=True)
    return sum(match_chunk(plan.run_id, chunk) for chunk in plan.chunks)


def test_a_run_reads_the_stored_vectors_and_encodes_nothing(encoder):
    _papers_and_a_reader()
    vectors.store_paper_vectors(list(Paper.objects.values_list("id", flat=True)))
    vectors.store_interest_vector("image generation with diffusion")
    encoder.texts.clear()

    assert _run() >= 1

    assert encoder.texts == []
    assert Candidate.objects.filter(paper__title="Diffusion models for images").exists()


def test_a_run_missing_vectors_encodes_and_stores_them_for_the_next(encoder):
    _papers_and_a_reader()

    first = _run()

    assert len(encoder.texts) == 3  # two papers, one interest
    assert stored_keys() == {text_key(text) for text in encoder.texts}
    Candidate.objects.all().delete()
    runs.clear_index_cache()
    encoder.texts.clear()
    assert _run() == first
    assert encoder.texts == []


def test_the_first_match_after_signup_reads_stored_vectors(encoder):
    _papers_and_a_reader()
    vectors.store_paper_vectors(list(Paper.objects.values_list("id", flat=True)))
    vectors.store_interest_vector("image generation with diffusion")
    encoder.texts.clear()

    assert runs.match_recent_papers(Subscriber.objects.get().id) >= 1
    assert encoder.texts == []


def test_the_ingest_task_stores_the_vectors_of_new_papers_and_of_changed_texts(
    encoder, settings, shared_feed, committed
):
    settings.FEEDS = [str(shared_feed(RSS_LG))]
    with committed():
        ingest_feeds()
    texts = [
        embedding.embedding_text(title, abstract) for title, abstract in Paper.objects.values_list("title", "abstract")
    ]
    assert len(texts) == 3
    assert stored_keys() == {text_key(text) for text in texts}
    assert sorted(encoder.texts) == sorted(texts)

    encoder.texts.clear()
    with committed():
        ingest_feeds()  # nothing new: nothing queued, nothing encoded
    assert encoder.texts == []


def test_a_new_title_or_abstract_is_a_new_text_to_encode_and_new_votes_are_not():
    parsed = ParsedPaper(guid="urn:x", title="A title", abstract="An abstract.", upvotes=1)
    counts = store_papers([parsed])
    paper = Paper.objects.get()
    assert counts.new_text == [paper.id]
    assert store_papers([ParsedPaper(guid="urn:x", title="A title", abstract="An abstract.", upvotes=5)]).new_text == []
    assert store_papers(
        [ParsedPaper(guid="urn:x", title="A title", abstract="A better abstract.")], from_arxiv=True
    ).new_text == [paper.id]


def test_a_saved_interest_is_encoded_after_commit_and_an_unchanged_one_is_not(encoder, committed):
    with committed():
        services.subscribe("ada@example.org", services.Preferences(interests="Sparse  attention for long\ncontext."))
    subscriber = Subscriber.objects.get()
    assert encoder.texts == []  # anyone can type an address: nothing is encoded until its owner confirms
    with committed():
        services.confirm(subscriber)
    assert encoder.texts == [interest_text(subscriber.interests)] == ["Sparse attention for long context."]
    assert stored_keys() == {text_key("Sparse attention for long context.")}

    encoder.texts.clear()
    with committed():
        services.update_preferences(subscriber, services.Preferences(interests=subscriber.interests, keywords="LLM"))
    assert encoder.texts == []

    with committed():
        services.update_preferences(
            subscriber, services.Preferences(interests="Protein folding. I don't want drug discovery.")
        )
    assert encoder.texts == ["Protein folding."]  # what the matcher compares: unwanted sentences left out


def test_the_subscribe_command_stores_the_interests_vector(encoder, committed):
    with committed():
        call_command("subscribe", "bob@example.org", "--interest", "robot grasping", "--confirmed", stdout=None)
    assert text_key("robot grasping") in stored_keys()


HOSTILE = {
    "one-long-word": "a" * 2000,
    "control-characters": "graph\x00neural\x07networks\x1b[31m\u200b\u202e for \ufffd molecules",
    "ten-thousand-copies": " ".join(["attention"] * 10_000),
    "form-limit-of-one-word": " ".join(["attention"] * 200)[:2000],
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_interest_is_encoded_without_error(text):
    found = stored_vectors([interest_text(text)])
    assert found.shape == (1, embedding.DIMENSIONS)
    assert np.linalg.norm(found[0]) == pytest.approx(1.0, abs=1e-5)


def test_the_longest_interest_the_form_takes_is_stored(committed):
    preferences = form_preferences("attention " * 199 + "attention")
    with committed():
        services.subscribe("eve@example.org", preferences)
        services.confirm(Subscriber.objects.get())
    assert text_key(interest_text(preferences.interests)) in stored_keys()


def cpu_seconds(work) -> float:
    """CPU time of `work()` in this process, every thread counted (BLAS may use several)."""
    started = time.process_time()
    work()
    return time.process_time() - started


def form_preferences(interests: str) -> services.Preferences:
    form = PreferencesForm(
        {
            "interests": interests,
            "frequency": "daily",
            "weekday": 0,
            "delivery_hour": 8,
            "timezone": "UTC",
            "max_papers": 10,
            "category_mode": "boost",
        }
    )
    assert form.is_valid(), form.errors
    return form.preferences()


SLOW_WORDS = "a" * 99 + "\u2600 "  # no vocabulary piece ends it: the tokenizer's slowest word
# The most costly interests the form takes (2,000 characters, no control character): each fills the
# model's 256 word pieces, or makes the tokenizer try the most pieces per character.
COSTLY_INTERESTS = {
    "slow-words": (SLOW_WORDS * 20)[:2000],
    "hundred-letter-words": (("a" * 100 + " ") * 20)[:2000],
    "punctuation": "!" * 2000,
    "cjk": "\u5317" * 2000,
    "combining-marks": ("a\u0301" * 49 + " ") * 20,
    "line-separators": "a\u2028" * 1000,
    "expanding-case": "\u0130" * 2000,  # "İ" lower-cases to two characters
}


@pytest.mark.parametrize("text", COSTLY_INTERESTS.values(), ids=COSTLY_INTERESTS.keys())
def test_the_costliest_interest_the_form_takes_is_encoded_in_under_half_a_second(text):
    interests = form_preferences(text).interests
    assert len(interests) <= 2000
    embedding.encode(["warm up"])
    embedding._remembered.clear()
    assert cpu_seconds(lambda: vectors.store_interest_vector(interests)) < 0.5
    assert TextVector.objects.count() == 1


# What a hostile feed (or a row stored before the feed caps) can put in an abstract.
PATHOLOGICAL = {
    "slow-words": SLOW_WORDS * 10_000,
    "combining-marks": "a" + "\u0301" * 1_000_000,
    "cjk": "\u5317" * 1_000_000,
    "punctuation": "!" * 1_000_000,
    "mixed": (
        "\u202eevil\u202c \u200b\u200d\U0001d400\U0001f600 \u0130stanbul \uac00\ufb03 \u00e9\u0301\u0327 " * 20_000
    ),
}


@pytest.mark.parametrize("abstract", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_a_megabyte_abstract_is_stored_in_bounded_time_and_the_run_completes(encoder, abstract):
    _papers_and_a_reader()
    hostile = make_paper(3, "A hostile paper \u202e\U0001f600", abstract)

    assert cpu_seconds(lambda: vectors.store_paper_vectors([hostile.id])) < 1.0

    assert text_key(embedding.embedding_text(hostile.title, hostile.abstract)) in stored_keys()
    assert _run() >= 1
    assert Candidate.objects.filter(paper__title="Diffusion models for images").exists()


def test_a_hostile_feeds_papers_are_cut_encoded_and_matched(encoder, settings, tmp_path, committed):
    title = "\u5317" * 5000
    items = "".join(
        f"<item><title>Hostile {number} {title}</title><guid>urn:hostile:{number}</guid>"
        f"<description>{abstract[:200_000]}</description></item>"
        for number, abstract in enumerate(PATHOLOGICAL.values())
    )
    feed = tmp_path / "hostile.xml"
    feed.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>{items}</channel></rss>')
    settings.FEEDS = [str(feed)]
    _papers_and_a_reader()

    with committed():
        elapsed = cpu_seconds(ingest_feeds)

    hostile = Paper.objects.filter(guid__startswith="urn:hostile:")
    assert hostile.count() == len(PATHOLOGICAL)
    assert all(len(paper.abstract) <= MAX_ABSTRACT_CHARS for paper in hostile)
    assert stored_keys() >= {text_key(embedding.embedding_text(p.title, p.abstract)) for p in hostile}
    assert elapsed < 2 * len(PATHOLOGICAL)
    assert _run() >= 1


def test_a_strangers_interest_stores_the_vector_of_its_own_text_and_changes_no_other(encoder, committed):
    paper = make_paper(1, "Neural Scene Flow Prior", "We estimate scene flow with a neural field.")
    victim = Subscriber.objects.create(
        email="ada@example.org", status=Subscriber.Status.ACTIVE, interests="image generation with diffusion"
    )
    paper_text = embedding.embedding_text(paper.title, paper.abstract)
    vectors.store_paper_vectors([paper.id])
    vectors.store_interest_vector(victim.interests)
    before = dict(TextVector.objects.values_list("key", "vector"))
    before = {bytes(key): bytes(vector) for key, vector in before.items()}
    attempts = [
        paper_text,  # the same text as a paper's: the same vector, by design
        victim.interests,
        victim.interests.upper(),
        f"{embedding.MODEL_NAME}\n{victim.interests}",  # the key's own prefix
        victim.interests.replace(" ", "\u00a0"),
        "image generation with diffusion. I don't want anything else.",
    ]

    for number, attempt in enumerate(attempts):
        with committed():
            services.subscribe(f"stranger{number}@example.net", form_preferences(attempt))

    assert _stored_rows() == before  # unconfirmed signups encode nothing
    with committed():
        for stranger in Subscriber.objects.exclude(pk=victim.pk):
            services.confirm(stranger)  # as if each stranger owned the address
    rows = _stored_rows()
    assert {key: rows[key] for key in before} == before
    own_texts = {interest_text(form_preferences(attempt).interests) for attempt in attempts}
    assert set(rows) - set(before) == {text_key(text) for text in own_texts} - set(before)
    for text in own_texts:
        assert rows[text_key(text)] == ENCODE([text])[0].astype("<f4").tobytes()
    assert Subscriber.objects.get(pk=victim.pk).interests == "image generation with diffusion"


GARBAGE_PAPER_IDS = [
    [],
    [10**9],
    [-1],
    [10**30],
    ["x"],
    [None],
    [[1]],
    [{"id": 1}],
    None,
    5,
    "1; DROP TABLE digest_textvector",
    {"ids": [1]},
    list(range(10**6, 10**6 + 100_000)),
]
GARBAGE_SUBSCRIBER_IDS = [None, -1, 10**9, 10**30, "x", "1 OR 1=1", [1], {"id": 1}, 1.5, b"\x00"]


def _stored_rows():
    return {bytes(key): bytes(vector) for key, vector in TextVector.objects.values_list("key", "vector")}


@pytest.mark.parametrize("paper_ids", GARBAGE_PAPER_IDS, ids=range(len(GARBAGE_PAPER_IDS)))
def test_the_paper_task_given_garbage_stores_nothing_and_erases_nothing(paper_ids):
    _papers_and_a_reader()
    runs_before = _run()
    rows = _stored_rows()

    try:
        result = vector_tasks.store_paper_vectors(paper_ids)
    except (TypeError, ValueError, ValidationError, OverflowError):
        result = None

    assert result in (0, None)
    assert _stored_rows() == rows
    assert Paper.objects.count() == 2 and Subscriber.objects.get().interests == "image generation with diffusion"
    assert runs_before >= 1


@pytest.mark.parametrize("subscriber_id", GARBAGE_SUBSCRIBER_IDS, ids=range(len(GARBAGE_SUBSCRIBER_IDS)))
def test_the_interest_task_given_garbage_stores_nothing_and_erases_nothing(subscriber_id):
    _papers_and_a_reader()
    _run()
    rows = _stored_rows()
    assert rows

    with contextlib.suppress(TypeError, ValueError, ValidationError, OverflowError):
        vector_tasks.store_interest_vector(subscriber_id)  # 1.5 names subscriber 1: their own text again

    assert _stored_rows() == rows
    assert Subscriber.objects.get().interests == "image generation with diffusion"


def _quick_vectors(texts):
    """Unit vectors that cost nothing: these tests are about which texts get stored, not their values."""
    found = np.zeros((len(texts), embedding.DIMENSIONS), dtype=np.float32)
    found[:, 0] = 1.0
    return found


def _paper_texts_stored() -> bool:
    texts = [
        embedding.embedding_text(title, abstract) for title, abstract in Paper.objects.values_list("title", "abstract")
    ]
    return bool(texts) and stored_keys() >= {text_key(text) for text in texts}


@pytest.mark.parametrize("command", ["pollfeeds", "ingest"])
def test_papers_ingested_by_the_commands_have_their_vectors_queued(
    command, monkeypatch, settings, shared_feed, committed
):
    # `make run` polls the feeds with `manage.py pollfeeds` once its worker runs: without this the
    # first match after signup (or the first run) would encode a day of papers itself, minutes.
    monkeypatch.setattr(embedding, "encode", _quick_vectors)
    settings.FEEDS = [str(shared_feed(RSS_LG))]
    with committed():
        call_command(command, stdout=None)
    assert Paper.objects.count() == 3
    assert _paper_texts_stored()


class TransactionWatch:
    """embedding.encode, noting for each text whether a transaction was open when it was encoded."""

    def __init__(self):
        self.encoded: list[tuple[str, bool]] = []

    def __call__(self, texts):
        self.encoded += [(text, connection.in_atomic_block) for text in texts]
        return ENCODE(texts)

    def assert_encoded_outside_transactions(self):
        """The papers' vectors and the active readers' interests' were encoded, none inside a transaction."""
        texts = set(vectors.paper_texts(list(Paper.objects.values_list("id", flat=True))))
        active = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).exclude(interests="")
        texts |= {interest_text(interests) for interests in active.values_list("interests", flat=True)}
        assert {text for text, _ in self.encoded} >= texts
        assert [text for text, inside in self.encoded if text in texts and inside] == []


@pytest.fixture
def watch(monkeypatch):
    watching = TransactionWatch()
    monkeypatch.setattr(embedding, "encode", watching)
    return watching


@pytest.mark.django_db(transaction=True)
def test_a_chunk_encodes_missing_paper_and_interest_vectors_before_its_transaction_opens(watch):
    _papers_and_a_reader()

    assert _run() >= 1

    watch.assert_encoded_outside_transactions()


@pytest.mark.django_db(transaction=True)
def test_a_chunk_whose_reader_has_a_model_and_no_interest_encodes_before_its_transaction(watch):
    """The reader's own model reads the papers' vectors as an interest does."""
    from digest.matching.reader_model import WEIGHT_DTYPE

    make_paper(1, "Diffusion models for images", "We denoise images with a diffusion model.")
    make_paper(2, "Graph colouring", "We colour sparse graphs with few colours.")
    reader = Subscriber.objects.create(email="ada@example.org", status=Subscriber.Status.ACTIVE, keywords="graph")
    weights = np.full(embedding.DIMENSIONS, 0.01, dtype=WEIGHT_DTYPE)
    ReaderModel.objects.create(subscriber=reader, weights=weights.tobytes(), positives=2, negatives=1)

    _run()

    watch.assert_encoded_outside_transactions()


@pytest.mark.django_db(transaction=True)
def test_the_first_match_after_signup_encodes_missing_vectors_before_its_transaction(watch):
    """As a run's chunk does: the re-match of a reader who just confirmed or changed their words
    meets papers whose vector task has not run yet."""
    _papers_and_a_reader()

    assert runs.match_recent_papers(Subscriber.objects.get().id) >= 1

    watch.assert_encoded_outside_transactions()


@pytest.mark.django_db(transaction=True)
def test_a_chunk_whose_reader_rewrote_their_words_as_it_matched_encodes_nothing_in_its_transaction(watch, monkeypatch):
    """The new words came after the chunk read the old ones' vector: whatever the chunk encodes
    for them, it encodes (and stores) before its transaction opens (the PostgreSQL deadlock this
    caused: tests/digest/matching/test_runs.py)."""
    _papers_and_a_reader()
    index_vectors = runs.stored_vectors

    def rewritten_once_read(texts):
        found = index_vectors(texts)
        if interest_text("image generation with diffusion") in texts:
            Subscriber.objects.update(interests="denoising diffusion for video")
        return found

    monkeypatch.setattr(runs, "stored_vectors", rewritten_once_read)

    _run()

    assert [text for text, inside in watch.encoded if inside] == []

from collections.abc import Iterable

from django.db import models
from django.db.models import Q

from digest.plain_sql import lock_keys


class Feed(models.Model):
    class Kind(models.TextChoices):
        AUTO = "auto", "Detect from content"
        ARXIV_RSS = "arxiv_rss", "arXiv RSS/Atom (rss.arxiv.org)"
        ARXIV_API = "arxiv_api", "arXiv API (Atom)"
        HF_DAILY = "hf_daily", "Hugging Face daily papers (JSON)"
        RSS = "rss", "Other RSS/Atom feed"

    url = models.CharField(max_length=2000, unique=True, help_text="http(s):// or file:// address")
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.AUTO)
    enabled = models.BooleanField(default=True)
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_new = models.PositiveIntegerField(default=0)
    last_updated = models.PositiveIntegerField(default=0)
    last_unchanged = models.PositiveIntegerField(default=0)
    last_skipped = models.PositiveIntegerField(default=0)
    # Counters for /metrics (paperboy_feed_polls_total, ...): they only grow while the feed exists.
    polls = models.PositiveIntegerField(default=0, help_text="Polls ever made")
    failed_polls = models.PositiveIntegerField(default=0, help_text="Polls that left an error, ever")
    failures_in_a_row = models.PositiveIntegerField(
        default=0, help_text="Polls that left an error since the last clean one"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]

    def __str__(self) -> str:
        return self.name or self.url


class Paper(models.Model):
    """One paper, stored once however many feeds announce it."""

    # DJ001: NULL, not "", when there is no arXiv id, so that the unique constraint skips those papers.
    arxiv_id = models.CharField(max_length=40, null=True, blank=True, help_text="Canonical id, no version")  # noqa: DJ001
    guid = models.CharField(max_length=1000, help_text="arXiv id when known, else the source's entry id")
    version = models.PositiveSmallIntegerField(default=1)
    title = models.TextField()
    abstract = models.TextField(blank=True)
    authors = models.JSONField(default=list, blank=True)
    categories = models.JSONField(default=list, blank=True)
    primary_category = models.CharField(max_length=40, blank=True)
    published = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(null=True, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    pdf_url = models.URLField(max_length=1000, blank=True)
    code_url = models.URLField(max_length=1000, blank=True)
    project_url = models.URLField(max_length=1000, blank=True)
    doi = models.CharField(max_length=200, blank=True)
    journal_ref = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    upvotes = models.PositiveIntegerField(default=0)
    # What Hugging Face's daily papers show beside a paper (other sources have none of these).
    num_comments = models.PositiveIntegerField(null=True, blank=True)
    organization = models.CharField(max_length=200, blank=True)
    thumbnail_url = models.URLField(max_length=1000, blank=True, help_text="https, on a Hugging Face host only")
    text_from_arxiv = models.BooleanField(
        default=False,
        help_text="Title, abstract, authors, categories and version come from arXiv's own feeds; "
        "other feeds no longer change them",
    )
    # A paper no feed has carried, fetched from the arXiv API only because a reader liked it (often
    # years old): never offered to anyone as new (digest/matching/runs.py). A feed sighting clears it.
    fetched_for_liked = models.BooleanField(default=False, db_default=False)
    first_seen = models.DateTimeField(auto_now_add=True, db_index=True)
    last_changed = models.DateTimeField(auto_now=True)
    feeds: "models.ManyToManyField[Feed, PaperSource]" = models.ManyToManyField(
        Feed, through="PaperSource", related_name="papers", blank=True
    )

    class Meta:
        ordering = ["-first_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["arxiv_id"], condition=Q(arxiv_id__isnull=False), name="paper_unique_arxiv_id"
            ),
            models.UniqueConstraint(fields=["guid"], name="paper_unique_guid"),
        ]
        indexes = [models.Index(fields=["published"])]

    def __str__(self) -> str:
        return self.title


class PaperSource(models.Model):
    """Which feeds announced a paper, and when first."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="sources")
    feed = models.ForeignKey(Feed, on_delete=models.CASCADE, related_name="sightings")
    first_seen = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["paper", "feed"], name="papersource_unique")]

    def __str__(self) -> str:
        return f"paper {self.paper_id} in feed {self.feed_id}"


class MatchRun(models.Model):
    """One pass of matching over the papers that arrived since the previous pass."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    first_paper_id = models.BigIntegerField(default=0, help_text="Papers with id > this were new")
    last_paper_id = models.BigIntegerField(default=0, help_text="...and id <= this")
    papers = models.PositiveIntegerField(default=0)
    subscribers = models.PositiveIntegerField(default=0)
    candidates = models.PositiveIntegerField(default=0)
    chunks = models.PositiveIntegerField(default=0, help_text="Subscriber chunks handed to workers")
    chunks_done = models.PositiveIntegerField(default=0, help_text="The run is finished when all are done")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"match run {self.pk}: papers {self.first_paper_id + 1} to {self.last_paper_id}"


class MatchChunk(models.Model):
    """A chunk of a run whose candidates are stored: a copy of the chunk's task delivered again
    finds it and stores nothing (it would store each subscriber's next-best share)."""

    # No index of its own: the unique (run, first subscriber id) one leads with it.
    run = models.ForeignKey(MatchRun, on_delete=models.CASCADE, related_name="chunks_stored", db_index=False)
    first_subscriber_id = models.BigIntegerField(help_text="The chunk's first subscriber id names it within the run")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "first_subscriber_id"], name="matchchunk_once")]

    def __str__(self) -> str:
        return f"chunk of match run {self.run_id} from subscriber {self.first_subscriber_id}"


class Candidate(models.Model):
    """A paper that matched a subscriber, waiting for a digest or shown in one.

    Which digest holds it is not written on the row: a delivery holds the subscriber's candidates
    in the id range it records (`Delivery.candidates`), and the waiting ones are those above every
    range (digest/delivery/claims.py).
    """

    # No index of its own: the (subscriber, paper) and (subscriber, id) indexes lead with it.
    subscriber = models.ForeignKey(
        "subscribers.Subscriber", on_delete=models.CASCADE, related_name="candidates", db_index=False
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="candidates")
    score = models.FloatField(help_text="Final ranking score (relevance mixed with trendiness)")
    relevance = models.FloatField(default=0)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    unstored = models.PositiveIntegerField(
        default=0,
        help_text="Matches of the same run ranked below this one and not stored; the digest counts them as more",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="candidate_unique_subscriber_paper")
        ]
        # A subscriber's candidates by id: a digest's range, and the waiting ones above it.
        indexes = [models.Index(fields=["subscriber", "id"], name="candidate_subscriber_id")]

    def __str__(self) -> str:
        return f"paper {self.paper_id} for subscriber {self.subscriber_id}"


# The advisory lock space of "a subscriber's candidates": (CANDIDATES_LOCK_SPACE, subscriber id).
CANDIDATES_LOCK_SPACE = 16


def lock_candidates_of(subscriber_ids: Iterable[int]) -> None:
    """Until the transaction ends, be the only one adding to these subscribers' candidates or
    fixing a digest's range of them (digest/delivery/claims.py says why); waits for a holder.
    PostgreSQL only: on SQLite a writing transaction holds the write lock from its start."""
    lock_keys(CANDIDATES_LOCK_SPACE, list(subscriber_ids))


# The advisory lock of "starting a match run": (MATCH_RUNS_LOCK_SPACE, 0).
MATCH_RUNS_LOCK_SPACE = 17


def lock_match_runs() -> None:
    """Until the transaction ends, be the only one deciding whether a match run starts and over
    which papers; waits for a holder. PostgreSQL only, as `lock_candidates_of`."""
    lock_keys(MATCH_RUNS_LOCK_SPACE, [0])


class Delivery(models.Model):
    """One digest for one subscriber and one period: the row that makes sending exactly-once."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"
        BOUNCED = "bounced"

    # Every index is written again each time a digest is claimed and recorded (a status change
    # is never a HOT update): no index of its own, as the (subscriber, period) one leads with it,
    # and one plain index on status (Meta), without the LIKE index a db_index would add.
    subscriber = models.ForeignKey(
        "subscribers.Subscriber", on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    period = models.CharField(max_length=20, help_text="e.g. 2026-11-26 (daily) or 2026-W48 (weekly)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    scheduled_for = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When a task to send it was last queued")
    attempts = models.PositiveSmallIntegerField(default=0)
    message_id = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    paper_count = models.PositiveSmallIntegerField(default=0)
    more_count = models.PositiveIntegerField(default=0, help_text="Matches beyond max papers")
    # Its content, fixed on the first attempt: the subscriber's candidates with after < id <= through.
    candidates_after = models.BigIntegerField(default=0, help_text="The subscriber's candidates above this id...")
    candidates_through = models.BigIntegerField(default=0, help_text="...and up to this id are this digest's")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "period"], name="delivery_unique_subscriber_period")
        ]
        # The admin lists deliveries newest first and the dashboard reads the last days.
        indexes = [
            models.Index(fields=["scheduled_for", "id"], name="delivery_scheduled"),
            models.Index(fields=["status"], name="delivery_status"),  # the retry sweep's pending rows
            # A subscriber's floor, the highest `candidates_through` (digest/delivery/claims.py): one
            # index probe, however many deliveries the subscriber has.
            models.Index(fields=["subscriber", "candidates_through"], name="delivery_subscriber_through"),
        ]

    def __str__(self) -> str:
        return f"digest {self.period} for subscriber {self.subscriber_id}"

    @property
    def candidates(self) -> "models.QuerySet[Candidate]":
        """The candidates its first attempt took: those shown, and those counted as "N more"."""
        return Candidate.objects.filter(self.holding())

    def holding(self) -> Q:
        """Its candidates, as a condition on Candidate (to combine several deliveries' in one query)."""
        return Q(subscriber_id=self.subscriber_id, id__gt=self.candidates_after, id__lte=self.candidates_through)

    @property
    def holds_any(self) -> bool:
        return self.candidates_through > self.candidates_after

    def holds(self, candidate_id: int) -> bool:
        """Whether a candidate of its subscriber, by id, is in its range."""
        return self.candidates_after < candidate_id <= self.candidates_through


# Upper bounds, in milliseconds, of the send-chunk duration buckets tallied on SendTally.
SEND_CHUNK_BUCKETS_MS = (250, 500, 1000, 2000, 5000, 15000, 60000, 300000)


class SendTally(models.Model):
    """What the send loop did, per minute, added to by every worker in one statement per chunk:
    digests tried and refused as messages (what the refusal alarm, /healthz and the sending pause
    read: digest/delivery/refusal_alarm.py) and how long the chunks that finished took (/metrics).
    One row per minute with mail, kept a week."""

    minute = models.DateTimeField(unique=True)
    tried = models.PositiveIntegerField(default=0)
    message_refusals = models.PositiveIntegerField(default=0)
    chunks = models.PositiveIntegerField(db_default=0, help_text="Send chunks that finished this minute")
    chunk_digests = models.PositiveIntegerField(db_default=0, help_text="Digests those chunks claimed")
    chunk_ms = models.PositiveBigIntegerField(db_default=0, help_text="Their milliseconds, added up")
    # Chunks that took at most so many milliseconds (SEND_CHUNK_BUCKETS_MS): a histogram's buckets.
    chunks_within_250ms = models.PositiveIntegerField(db_default=0)
    chunks_within_500ms = models.PositiveIntegerField(db_default=0)
    chunks_within_1000ms = models.PositiveIntegerField(db_default=0)
    chunks_within_2000ms = models.PositiveIntegerField(db_default=0)
    chunks_within_5000ms = models.PositiveIntegerField(db_default=0)
    chunks_within_15000ms = models.PositiveIntegerField(db_default=0)
    chunks_within_60000ms = models.PositiveIntegerField(db_default=0)
    chunks_within_300000ms = models.PositiveIntegerField(db_default=0)

    class Meta:
        ordering = ["-minute"]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M}: {self.message_refusals} of {self.tried} refused"


class LikedPaper(models.Model):
    """A paper a subscriber told us they liked (digest/papers/liked_papers.py).

    Known papers point at their row; the others wait, by arXiv id or by title, until a fetch from
    the arXiv API (digest.fetch_liked_papers) stores them, or says arXiv has no such paper.
    """

    class State(models.TextChoices):
        KNOWN = "known"
        WAITING = "waiting", "Waiting for arXiv"
        NOT_FOUND = "not_found", "Not on arXiv"

    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.CASCADE, related_name="liked_papers")
    paper = models.ForeignKey(Paper, null=True, blank=True, on_delete=models.CASCADE, related_name="liked_by")
    arxiv_id = models.CharField(max_length=40, blank=True, help_text="As given, canonical (no version)")
    title = models.CharField(max_length=300, blank=True, help_text="As given, when given by title")
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    added_at = models.DateTimeField(auto_now_add=True)
    fetch_attempts = models.PositiveSmallIntegerField(default=0)
    next_fetch_at = models.DateTimeField(null=True, blank=True, help_text="When a waiting paper is asked for next")
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "paper"], condition=Q(paper__isnull=False), name="likedpaper_unique_paper"
            ),
            models.UniqueConstraint(
                fields=["subscriber", "arxiv_id"], condition=~Q(arxiv_id=""), name="likedpaper_unique_arxiv_id"
            ),
        ]
        indexes = [
            models.Index(fields=["next_fetch_at"], condition=Q(state="waiting"), name="likedpaper_waiting"),
        ]

    def __str__(self) -> str:
        return f"{self.arxiv_id or self.title or self.paper_id} liked by subscriber {self.subscriber_id}"


class MarkedPaper(models.Model):
    """A "more like this" or "less like this" click on a paper of a digest (digest/matching/feedback.py).

    The per-subscriber model (digest/matching/reader_model.py) learns from these rows; `keyword` is
    the term the click wrote into the subscriber's keywords, so undoing the click takes it out too.
    """

    class Direction(models.TextChoices):
        MORE = "more", "More like this"
        LESS = "less", "Less like this"

    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.CASCADE, related_name="marked_papers")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="marked_by")
    direction = models.CharField(max_length=4, choices=Direction.choices)
    keyword = models.CharField(max_length=300, blank=True, help_text="The keyword the click added, if any")
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["marked_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="markedpaper_unique_paper"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} like paper {self.paper_id}, subscriber {self.subscriber_id}"


class ReaderModel(models.Model):
    """A subscriber's own linear model over the papers' sentence vectors, trained when they mark or
    like papers (digest/matching/reader_model.py, and again by a reader's re-match) and read by every
    match run: a run never trains."""

    subscriber = models.OneToOneField("subscribers.Subscriber", on_delete=models.CASCADE, related_name="reader_model")
    weights = models.BinaryField(
        default=b"", help_text="One weight per dimension of the sentence vector: little-endian float32s"
    )
    bias = models.FloatField(default=0.0)
    positives = models.PositiveIntegerField(default=0)
    negatives = models.PositiveIntegerField(default=0)
    from_clicks = models.BooleanField(default=True, help_text="Whether any positive came from a click")
    from_liked = models.BooleanField(default=False, help_text="Whether any positive came from the liked list")
    trained_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"model of subscriber {self.subscriber_id}: {self.positives} more, {self.negatives} less"


class TextVector(models.Model):
    """A text's sentence vector, computed once and kept (digest/matching/vectors.py): a paper's
    title and abstract at ingestion, a subscriber's interest when it is confirmed or changed, anything a run lacks
    when it meets it. Keyed by the model and the text, not by a paper or a subscriber: a text used
    by several (two readers writing the same interest, a paper's unchanged new version) is encoded
    once, and a changed text simply has another key."""

    # Bytes rather than hex: half the key, and PostgreSQL adds no LIKE index beside the primary key.
    key = models.BinaryField(primary_key=True, max_length=20, help_text="sha1 of the model name, a newline, the text")
    vector = models.BinaryField(help_text="The unit vector: little-endian float32s")
    # Refreshed by whoever reads it, at most once a day; retention deletes what nothing used for
    # RETENTION_DAYS (digest/delivery/retention.py).
    used_on = models.DateField(db_index=True)

    def __str__(self) -> str:
        return f"vector {bytes(self.key).hex()[:12]}, used on {self.used_on}"

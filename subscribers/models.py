import uuid

from django.db import models
from django.db.models.functions import Lower


class Topic(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(help_text="Matched by meaning against paper abstracts")
    keywords = models.TextField(blank=True, help_text='Same syntax as a subscriber\'s: "a phrase", word, -excluded')
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        PAUSED = "paused"
        UNSUBSCRIBED = "unsubscribed"
        BOUNCED = "bounced"

    class Frequency(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"

    class CategoryMode(models.TextChoices):
        BOOST = "boost", "Prefer papers in these categories"
        FILTER = "filter", "Only papers in these categories"

    email = models.EmailField(max_length=254)
    # What links name the subscriber by: random, so that a link tells nothing of how many
    # subscribers there are or when this one joined (the row id is sequential).
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    timezone = models.CharField(max_length=64, default="UTC")
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    weekday = models.PositiveSmallIntegerField(default=0, help_text="0 = Monday, for weekly digests")
    delivery_hour = models.PositiveSmallIntegerField(default=8, help_text="Local hour, 0-23")
    max_papers = models.PositiveSmallIntegerField(default=10)

    topics = models.ManyToManyField(Topic, blank=True, related_name="subscribers")
    keywords = models.TextField(blank=True, help_text='"a phrase", word, -excluded')
    interests = models.TextField(blank=True, help_text="Free-text description, matched by meaning")
    categories = models.JSONField(default=list, blank=True)
    category_mode = models.CharField(max_length=8, choices=CategoryMode.choices, default=CategoryMode.BOOST)
    authors = models.JSONField(default=list, blank=True)
    # The terms "more/less like this" clicks wrote into `keywords`, as written there: the manage
    # page lists these (not the reader's own typed terms) with an Undo button each.
    learned_keywords = models.JSONField(default=list, blank=True)
    # {learned "more" term: the category a click added with it}: undoing the term takes the
    # category out too, once no other learned term holds it. Categories the reader had are not here.
    learned_categories = models.JSONField(default=dict, blank=True)

    next_delivery_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    manage_link_sent_at = models.DateTimeField(null=True, blank=True)
    bounce_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(Lower("email"), name="subscriber_unique_email_ci")]

    def __str__(self) -> str:
        return self.email


def lock_subscriber(subscriber_id: int) -> None:
    """Lock the subscriber's row until the transaction ends. Whatever changes a subscriber's marks,
    liked papers or reader model, or erases them, takes this lock first, before any row that hangs
    off them: the same order everywhere, so two such changes wait for each other instead of
    deadlocking (PostgreSQL; SQLite's writers take turns anyway)."""
    Subscriber.objects.select_for_update().filter(pk=subscriber_id).values_list("pk").first()

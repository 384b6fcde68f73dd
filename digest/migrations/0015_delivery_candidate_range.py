"""A digest's candidates become an id range recorded on its Delivery, instead of a `delivery_id`
written on every candidate when the digest is claimed (digest/delivery/claims.py).

A claim took all of its subscriber's waiting candidates, so a digest's candidates were usually
consecutive among its subscriber's ids, and the waiting ones above them. Not always: a match that
committed after a claim, with ids taken before it, left a candidate waiting below or inside the
range of the digest claimed meanwhile, and the next digest then took it. From an id range, the
first would be held by the older digest (which never showed it) or by none, and the second by two
digests. Those candidates get new ids first (`give_out_of_order_candidates_new_ids`), so that each
digest's candidates are one range and the waiting ones lie above them all; docs/decisions.md.
"""

from django.core.management.color import no_style
from django.db import migrations, models

# Digests whose candidates have another digest's candidates of their subscriber between them.
DIGESTS_WITH_OTHERS_AMONG_THEIRS = """
SELECT delivery_id, subscriber_id FROM (
    SELECT delivery_id, subscriber_id, ROW_NUMBER() OVER (PARTITION BY subscriber_id ORDER BY id) AS n
    FROM digest_candidate WHERE delivery_id IS NOT NULL
) AS attached
GROUP BY delivery_id, subscriber_id
HAVING MAX(n) - MIN(n) + 1 <> COUNT(*)
ORDER BY delivery_id
"""

# Subscribers with a waiting candidate below one of their digests' candidates.
SUBSCRIBERS_WAITING_BELOW_A_DIGEST = """
SELECT subscriber_id FROM digest_candidate
GROUP BY subscriber_id
HAVING MIN(CASE WHEN delivery_id IS NULL THEN id END) < MAX(CASE WHEN delivery_id IS NOT NULL THEN id END)
"""


def give_out_of_order_candidates_new_ids(apps, schema_editor):
    """Move, to new ids above every candidate's, each digest in DIGESTS_WITH_OTHERS_AMONG_THEIRS
    (all of its candidates, one digest after another), then all the waiting candidates of those
    digests' subscribers and of SUBSCRIBERS_WAITING_BELOW_A_DIGEST. What stays was in order, and
    nothing else of these subscribers lies above what moved. No table refers to a candidate's id.
    """
    Candidate = apps.get_model("digest", "Candidate")
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(DIGESTS_WITH_OTHERS_AMONG_THEIRS)
        out_of_order = cursor.fetchall()
        cursor.execute(SUBSCRIBERS_WAITING_BELOW_A_DIGEST)
        subscribers = {subscriber_id for (subscriber_id,) in cursor.fetchall()}
    digests = [delivery_id for delivery_id, _ in out_of_order]
    subscribers |= {subscriber_id for _, subscriber_id in out_of_order}
    groups = [Candidate.objects.filter(delivery_id=delivery_id) for delivery_id in digests]
    groups += [Candidate.objects.filter(subscriber_id=s, delivery__isnull=True) for s in sorted(subscribers)]
    moves: list[tuple[int, int]] = []
    next_id = (Candidate.objects.aggregate(top=models.Max("id"))["top"] or 0) + 1
    for group in groups:
        for old_id in group.order_by("id").values_list("id", flat=True):
            moves.append((next_id, old_id))
            next_id += 1
    if not moves:
        return
    with connection.cursor() as cursor:
        cursor.executemany("UPDATE digest_candidate SET id = %s WHERE id = %s", moves)
        for sql in connection.ops.sequence_reset_sql(no_style(), [Candidate]):
            cursor.execute(sql)
    print(
        f"\n  Moved {len(moves)} candidates to new ids, so that each digest's are one id range: those of"
        f" {len(digests)} digest(s) and the waiting ones of {len(subscribers)} subscriber(s)."
    )


# Each delivery's range from the candidates attached to it, now consecutive among its subscriber's.
RANGES_FROM_ATTACHED = """
UPDATE digest_delivery SET
    candidates_after = (SELECT MIN(c.id) - 1 FROM digest_candidate AS c WHERE c.delivery_id = digest_delivery.id),
    candidates_through = (SELECT MAX(c.id) FROM digest_candidate AS c WHERE c.delivery_id = digest_delivery.id)
WHERE EXISTS (SELECT 1 FROM digest_candidate AS c WHERE c.delivery_id = digest_delivery.id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("digest", "0014_merge_pgsend"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="candidates_after",
            field=models.BigIntegerField(default=0, help_text="The subscriber's candidates above this id..."),
        ),
        migrations.AddField(
            model_name="delivery",
            name="candidates_through",
            field=models.BigIntegerField(default=0, help_text="...and up to this id are this digest's"),
        ),
        migrations.RunPython(give_out_of_order_candidates_new_ids, migrations.RunPython.noop),
        migrations.RunSQL(RANGES_FROM_ATTACHED, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="candidate",
            index=models.Index(fields=["subscriber", "id"], name="candidate_subscriber_id"),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(fields=["subscriber", "candidates_through"], name="delivery_subscriber_through"),
        ),
        migrations.RemoveField(
            model_name="candidate",
            name="delivery",
        ),
    ]

"""A digest's candidates become an id range recorded on its Delivery, instead of a `delivery_id`
written on every candidate when the digest is claimed (digest/delivery/claims.py)."""

from django.db import migrations, models

# Each delivery's range from the candidates attached to it. They were the subscriber's waiting
# candidates when it was claimed, so the ranges of one subscriber's deliveries follow each other;
# a candidate left waiting below a range (committed late, as the range rule now prevents) would
# stay in no digest.
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

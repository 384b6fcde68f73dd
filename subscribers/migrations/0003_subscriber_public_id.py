"""Every subscriber gets a random public id, the name links use instead of the sequential row id.

Added as Django's docs add a unique field to a filled table: nullable first, then one random value
per row, then unique and required.
"""

import uuid

from django.db import migrations, models

BATCH = 2000


def give_every_subscriber_a_public_id(apps, schema_editor):
    Subscriber = apps.get_model("subscribers", "Subscriber")
    batch = []
    for subscriber in Subscriber.objects.filter(public_id__isnull=True).only("pk").iterator(chunk_size=BATCH):
        subscriber.public_id = uuid.uuid4()
        batch.append(subscriber)
        if len(batch) == BATCH:
            Subscriber.objects.bulk_update(batch, ["public_id"])
            batch = []
    Subscriber.objects.bulk_update(batch, ["public_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0002_manage_link_sent_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="public_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_every_subscriber_a_public_id, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="subscriber",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]

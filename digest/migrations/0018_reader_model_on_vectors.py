"""The reader's own model reads sentence vectors instead of TF-IDF terms: its stems and their weights
give way to one weight per dimension of the sentence vector (digest/matching/reader_model.py).

The old weights cannot be translated, but what taught them is stored: the reader's marked and liked
papers and their words. So every stored model is retrained from those, as the reader's next click
would retrain it (`reader_model.retrain`, the application's own code rather than a copy that would
drift from it; every query it makes names its columns, so it reads only what this state holds). A
reader whose examples are no longer enough (a liked paper gone) loses the model, as a click would.

Not atomic: the schema change commits at once, and each model as it is retrained (its own
transaction), so match runs are not held while the examples' vectors are read or encoded. A run
meanwhile matches a reader not yet retrained without their model (`stored_weights` reads an empty
row as none). Backwards, the models are left empty: the TF-IDF code reads no model until the
reader's next click.
"""

from django.db import migrations, models


def retrain_stored_models(apps, schema_editor):
    from digest.matching.reader_model import retrain
    from subscribers.models import Subscriber

    ReaderModel = apps.get_model("digest", "ReaderModel")
    subscriber_ids = list(ReaderModel.objects.order_by("subscriber_id").values_list("subscriber_id", flat=True))
    for subscriber in Subscriber.objects.filter(id__in=subscriber_ids).only("id", "interests", "keywords"):
        retrain(subscriber)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("digest", "0017_textvector"),
    ]

    operations = [
        migrations.RemoveField(model_name="readermodel", name="terms"),
        migrations.RemoveField(model_name="readermodel", name="weights"),
        migrations.AddField(
            model_name="readermodel",
            name="weights",
            field=models.BinaryField(
                default=b"", help_text="One weight per dimension of the sentence vector: little-endian float32s"
            ),
        ),
        migrations.RunPython(retrain_stored_models, migrations.RunPython.noop, elidable=True),
    ]

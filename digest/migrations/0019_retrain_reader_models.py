"""Every reader's model emptied by 0018 is retrained on sentence vectors from what taught it.

The old TF-IDF weights cannot be translated, but the reader's marked and liked papers and their
words are stored: each model is retrained from those, as the reader's next click would retrain it
(`reader_model.retrain`, the application's own code rather than a copy that would drift from it).
Its reads name their columns, so they read only what this state holds, but its writes go through
today's `ReaderModel` and `TextVector`: a later migration adding a column to either must make this
one write through the historical models first, or upgrading an old database stops here. A reader
whose examples are no longer enough (a liked paper gone) loses the model, as a click would.

Not atomic, and apart from the schema change: each model is committed as it is retrained, so match
runs are not held while the examples' vectors are read or encoded, and a migration stopped midway
(or failing on one reader) is run again from the start without harm (`retrain` is safe to run twice).
"""

from django.db import migrations


def retrain_stored_models(apps, schema_editor):
    from digest.matching.reader_model import retrain
    from subscribers.models import Subscriber

    ReaderModel = apps.get_model("digest", "ReaderModel")
    subscriber_ids = list(ReaderModel.objects.order_by("subscriber_id").values_list("subscriber_id", flat=True))
    for subscriber in Subscriber.objects.filter(id__in=subscriber_ids).only("id", "interests", "keywords"):
        retrain(subscriber, encode_at_most=None)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("digest", "0018_reader_model_on_vectors"),
    ]

    operations = [
        migrations.RunPython(retrain_stored_models, migrations.RunPython.noop, elidable=True),
    ]

"""The reader's own model reads sentence vectors instead of TF-IDF terms: its stems and their weights
give way to one weight per dimension of the sentence vector (digest/matching/reader_model.py).

The stored models are left empty here, and retrained from what taught them in 0019; meanwhile a
run matches their readers without them (`stored_weights` reads an empty row as none). Backwards,
the models stay empty: the TF-IDF code reads no model until the reader's next click.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
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
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0011_import_warnings_and_value_matches"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="value_counts",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0007_audit_no_truncate"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="ai_send_samples",
            field=models.BooleanField(
                default=False, verbose_name="Send samples to the AI provider"
            ),
        ),
    ]

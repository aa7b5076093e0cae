"""Contact tags get an explicit through model on the table Django made for them, so the tag
side can go without its database foreign key (see ContactTag). Only that constraint changes
in the database: the table, its unique (contact, tag) constraint and its tag index keep the
names Django gave them, which are the names the model's state expects."""

import django.db.models.deletion
from django.db import migrations, models

DROP_TAG_KEY = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN
        SELECT c.conname FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
         WHERE c.conrelid = 'contacts_contact_tags'::regclass AND c.contype = 'f'
           AND a.attname = 'tag_id'
    LOOP
        EXECUTE format('ALTER TABLE contacts_contact_tags DROP CONSTRAINT %I', name);
    END LOOP;
END $$;
"""

RESTORE_TAG_KEY = """
ALTER TABLE contacts_contact_tags
  ADD CONSTRAINT contacts_contact_tags_tag_id_84637693_fk_contacts_tag_id
  FOREIGN KEY (tag_id) REFERENCES contacts_tag (id) DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0007_import_parts_and_contact_source"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ContactTag",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "contact",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                to="contacts.contact",
                            ),
                        ),
                        (
                            "tag",
                            models.ForeignKey(
                                db_constraint=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                to="contacts.tag",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "contacts_contact_tags",
                        "unique_together": {("contact", "tag")},
                    },
                ),
                migrations.AlterField(
                    model_name="contact",
                    name="tags",
                    field=models.ManyToManyField(
                        blank=True,
                        related_name="contacts",
                        through="contacts.ContactTag",
                        to="contacts.tag",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(DROP_TAG_KEY, reverse_sql=RESTORE_TAG_KEY),
            ],
        ),
    ]

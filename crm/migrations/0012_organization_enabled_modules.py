import django.contrib.postgres.fields
from django.db import migrations, models

# The rights the built-in roles had in the new "custom_objects" module when it was added
# (crm.permissions.BUILTIN_ROLES then), frozen here: actions as initials, and the scope.
_BUILTIN_CUSTOM_OBJECTS = {
    "owner": ("vcedx", "all"),
    "admin": ("vcedx", "all"),
    "executive": ("vcex", "all"),
    "director": ("vcedx", "team"),
    "team": ("vce", "own"),
    "viewer": ("v", "all"),
}
_LETTERS = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}


def grant_builtin_roles(apps, schema_editor):
    """Built-in roles get the new module as their definition says; custom roles start closed
    (an admin opens it), as any new module does."""
    Role = apps.get_model("crm", "Role")
    for role in Role.objects.filter(is_builtin=True, key__in=_BUILTIN_CUSTOM_OBJECTS):
        permissions = dict(role.permissions or {})
        if "custom_objects" in permissions:
            continue
        actions, scope = _BUILTIN_CUSTOM_OBJECTS[role.key]
        granted = {_LETTERS[letter] for letter in actions}
        permissions["custom_objects"] = {
            "access": True,
            **{action: action in granted for action in _LETTERS.values()},
            "scope": scope,
        }
        role.permissions = permissions
        role.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0011_row_level_security"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="enabled_modules",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=40), blank=True, default=list, size=None
            ),
        ),
        migrations.RunPython(grant_builtin_roles, migrations.RunPython.noop),
    ]

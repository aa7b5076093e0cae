"""Personal preferences of a user (the theme today). They follow the user into every
organization, so they are not tenant data; the change is still audited in the organization
the user was working in, so an admin can see who changed what from where."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import UserPreference
from .audit import Actor, audit, diff, snapshot

THEME_KEYS = frozenset(key for key, _label, _mode in UserPreference.THEMES)


def theme_for(user) -> str:
    """The theme `user` chose, or the default one for someone who never chose."""
    if user is None or not user.is_authenticated:
        return UserPreference.DEFAULT_THEME
    theme = UserPreference.objects.filter(user=user).values_list("theme", flat=True).first()
    return theme or UserPreference.DEFAULT_THEME


@transaction.atomic
def preference_set_theme(*, user, theme: str, org=None, actor: Actor | None = None):
    """Remember `theme` for `user`. An unknown theme key changes nothing and raises
    ValidationError. Choosing the theme already saved writes nothing."""
    if theme not in THEME_KEYS:
        raise ValidationError({"theme": f"“{theme}” is not one of the available themes."})
    preference, _ = UserPreference.objects.select_for_update().get_or_create(user=user)
    if preference.theme == theme:
        return preference
    before = snapshot(preference, ["theme"])
    preference.theme = theme
    preference.save(update_fields=["theme"])
    if org is not None:
        audit(
            org=org,
            actor=actor or Actor.for_user(user),
            verb="preference.theme_changed",
            obj=preference,
            object_repr=user.email,
            changes=diff(before, snapshot(preference, ["theme"])),
        )
    return preference

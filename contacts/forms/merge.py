"""Forms of the Data Health pages: the band filter of the pair list, the search that picks a
contact to merge with, and the compare page's choice of which value survives per field.

They only shape input; contacts.services.merge checks everything again and does the writing."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from ..dedup.models import DuplicatePair

SIDES = [("primary", "Keep the primary's value"), ("secondary", "Keep the other value")]
CHOICE_PREFIX = "keep__"


class PairFilterForm(forms.Form):
    """?band=probable|possible; anything else shows every band."""

    band = forms.ChoiceField(
        required=False, choices=[("", "All"), *DuplicatePair.Band.choices], label="Band"
    )

    def band_value(self) -> str:
        return self.cleaned_data.get("band", "") if self.is_valid() else ""


class MergeSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="Find the contact to merge with",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )


class MergeChoicesForm(forms.Form):
    """One radio per field whose values differ: which side's value the merged contact keeps.
    `preview` is merge_preview's list; fields that agree need no choice."""

    def __init__(self, *args, preview, **kwargs):
        super().__init__(*args, **kwargs)
        self.preview = list(preview)
        for choice in self.preview:
            if not choice.differs:
                continue
            # A field the member may not change keeps the primary's value; Django ignores
            # whatever a forged POST sends for a disabled field.
            self.fields[CHOICE_PREFIX + choice.key] = forms.ChoiceField(
                choices=SIDES,
                initial=choice.default,
                label=choice.label,
                widget=forms.RadioSelect,
                # Not sent (a script, an old page): the default rule decides, as it would.
                required=False,
                disabled=not getattr(choice, "editable", True),
            )

    def rows(self):
        """(choice, bound field or None) in the preview's order, for the side-by-side table."""
        for choice in self.preview:
            name = CHOICE_PREFIX + choice.key
            yield choice, (self[name] if name in self.fields else None)

    def choices(self) -> dict[str, str]:
        """{field key: "primary" | "secondary"} for every differing field the member may
        change (the service keeps the primary's value of the others)."""
        if not self.is_valid():
            raise ValidationError("Choose which value to keep for every field that differs.")
        return {
            name.removeprefix(CHOICE_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(CHOICE_PREFIX) and value and not self.fields[name].disabled
        }

    def add_service_errors(self, exc: ValidationError) -> None:
        """A service refusal keyed by field key lands on that field's radio; the rest on top."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            name = CHOICE_PREFIX + key
            if name in self.fields:
                self.add_error(name, messages)
            else:
                self.add_error(None, messages)

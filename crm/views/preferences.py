"""Settings → Customize: each member's own look of the app (the theme)."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ..decorators import member_required
from ..models import UserPreference
from ..services import Actor, preference_set_theme, theme_for


class ThemeForm(forms.Form):
    theme = forms.ChoiceField(
        choices=UserPreference.THEME_CHOICES,
        error_messages={
            "required": "Choose a theme.",
            "invalid_choice": "“%(value)s” is not one of the available themes.",
        },
    )


def _theme_cards(selected: str) -> list[dict]:
    return [
        {"key": key, "label": label, "mode": mode, "checked": key == selected}
        for key, label, mode in UserPreference.THEMES
    ]


@member_required()
@require_http_methods(["GET", "POST"])
def customize(request):
    saved_theme = theme_for(request.user)
    form = ThemeForm(initial={"theme": saved_theme})
    status = 200
    if request.method == "POST":
        form = ThemeForm(request.POST)
        if form.is_valid():
            saved_theme = form.cleaned_data["theme"]
            preference_set_theme(
                user=request.user,
                theme=saved_theme,
                org=request.org,
                actor=Actor.from_request(request),
            )
            messages.success(request, "Theme saved")
            if not request.htmx:
                return redirect("crm:customize")
        else:
            status = 400
    template = "crm/customize.html#theme-status" if request.htmx else "crm/customize.html"
    context = {
        "form": form,
        "saved_theme": saved_theme,
        "theme_cards": _theme_cards(saved_theme),
    }
    return render(request, template, context, status=status)

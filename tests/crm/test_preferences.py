"""Settings → Customize: each member's theme, and the themes themselves (complete, legible)."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import AuditEvent, UserPreference
from crm.services import preference_set_theme, theme_for
from tests.factories import member

CUSTOMIZE = reverse("crm:customize")
THEME_KEYS = [key for key, _label, _mode in UserPreference.THEMES]


def saved_theme(user):
    return UserPreference.objects.get(user=user).theme


def html_theme(response):
    return re.search(r'<html[^>]*data-theme="([\w-]+)"', response.content.decode()).group(1)


# Saving --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_member_saves_a_theme_and_is_sent_back_to_customize_with_a_toast(owner, client_as):
    client = client_as(owner)
    response = client.post(CUSTOMIZE, {"theme": "paper"})

    assert response.status_code == 302
    assert response["Location"] == CUSTOMIZE
    assert saved_theme(owner.user) == "paper"
    page = client.get(CUSTOMIZE).content.decode()
    assert re.search(
        r'class="toast toast-success"[^>]*>\s*<span class="toast-text">Theme saved<', page
    )


@pytest.mark.django_db
def test_saving_a_theme_over_htmx_answers_with_a_toast_trigger(owner, client_as):
    response = client_as(owner, htmx=True).post(CUSTOMIZE, {"theme": "ocean"})

    assert response.status_code == 200
    trigger = json.loads(response["HX-Trigger"])
    assert trigger["toast"] == [{"level": "success", "text": "Theme saved"}]
    assert 'data-saved-theme="ocean"' in response.content.decode()
    assert saved_theme(owner.user) == "ocean"


@pytest.mark.django_db
def test_every_role_may_choose_a_theme(members, client_as):
    for role_key, membership in members.items():
        client = client_as(membership)
        assert client.get(CUSTOMIZE).status_code == 200, role_key
        client.post(CUSTOMIZE, {"theme": "forest"})
        assert saved_theme(membership.user) == "forest", role_key


@pytest.mark.django_db
def test_theme_change_is_audited_with_before_and_after(owner, client_as):
    client_as(owner).post(CUSTOMIZE, {"theme": "ember"})

    event = AuditEvent.objects.for_org(owner.org).get(verb="preference.theme_changed")
    assert event.actor_user == owner.user
    assert event.changes == {"theme": ["midnight", "ember"]}


@pytest.mark.django_db
def test_choosing_the_theme_already_saved_writes_nothing(owner):
    preference_set_theme(user=owner.user, theme="graphite", org=owner.org)
    preference_set_theme(user=owner.user, theme="graphite", org=owner.org)

    verbs = AuditEvent.objects.for_org(owner.org).filter(verb="preference.theme_changed")
    assert verbs.count() == 1


@pytest.mark.django_db
def test_customize_asks_anonymous_visitors_to_log_in(client):
    response = client.post(CUSTOMIZE, {"theme": "paper"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse(settings.LOGIN_URL))
    assert not UserPreference.objects.exists()


# Rejecting -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_unknown_theme_is_rejected_with_a_form_error_and_nothing_saved(owner, client_as, htmx):
    preference_set_theme(user=owner.user, theme="daylight")
    audit_before = AuditEvent.objects.count()

    response = client_as(owner, htmx=htmx).post(CUSTOMIZE, {"theme": "neon"})

    assert response.status_code == 400
    body = response.content.decode()
    assert "“neon” is not one of the available themes." in body
    assert 'data-saved-theme="daylight"' in body
    assert saved_theme(owner.user) == "daylight"
    assert AuditEvent.objects.count() == audit_before
    assert "HX-Trigger" not in response


@pytest.mark.django_db
def test_missing_theme_is_rejected(owner, client_as):
    response = client_as(owner).post(CUSTOMIZE, {})

    assert response.status_code == 400
    assert "Choose a theme." in response.content.decode()
    assert not UserPreference.objects.filter(user=owner.user).exists()


@pytest.mark.django_db
def test_service_refuses_an_unknown_theme(owner):
    with pytest.raises(ValidationError):
        preference_set_theme(user=owner.user, theme="<script>", org=owner.org)
    assert theme_for(owner.user) == UserPreference.DEFAULT_THEME


# Rendering -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_saved_theme_is_rendered_on_the_next_page(owner, client_as):
    client = client_as(owner)
    assert html_theme(client.get(reverse("crm:dashboard"))) == "midnight"

    client.post(CUSTOMIZE, {"theme": "contrast"})

    assert html_theme(client.get(reverse("crm:dashboard"))) == "contrast"
    assert html_theme(client.get(CUSTOMIZE)) == "contrast"


@pytest.mark.django_db
def test_picker_offers_all_nine_themes_with_the_saved_one_checked(owner, client_as):
    preference_set_theme(user=owner.user, theme="aubergine")

    body = client_as(owner).get(CUSTOMIZE).content.decode()

    offered = re.findall(r'<input type="radio" name="theme" value="([\w-]+)"', body)
    assert offered == THEME_KEYS
    assert re.search(r'value="aubergine" checked', body)
    assert len(re.findall(r" checked>", body)) == 1


@pytest.mark.django_db
def test_saving_a_theme_leaves_another_users_theme_untouched(org, owner, client_as):
    colleague = member(org, "team")
    preference_set_theme(user=colleague.user, theme="forest")

    client_as(owner).post(CUSTOMIZE, {"theme": "paper"})

    assert saved_theme(colleague.user) == "forest"
    colleague_page = client_as(colleague).get(reverse("crm:dashboard"))
    assert html_theme(colleague_page) == "forest"


@pytest.mark.django_db
def test_theme_follows_the_user_into_another_organization(owner, other_org, client_as):
    elsewhere = member(other_org, "viewer", user=owner.user)
    client_as(owner).post(CUSTOMIZE, {"theme": "paper"})

    assert html_theme(client_as(elsewhere).get(reverse("crm:dashboard"))) == "paper"


# The themes ----------------------------------------------------------------------------

THEMES_CSS = Path(settings.BASE_DIR, "static", "css", "themes.css")


def parse_themes(css: str) -> dict[str, dict[str, str]]:
    """{theme key: {property: value}} from every `[data-theme="key"]` block."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    themes = {}
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        declarations = dict(re.findall(r"([\w-]+)\s*:\s*([^;]+);", body))
        for key in re.findall(r'\[data-theme="([\w-]+)"\]', selector):
            themes[key] = {name: value.strip() for name, value in declarations.items()}
    return themes


def rgba(value: str) -> tuple[float, float, float, float]:
    value = value.strip()
    if value.startswith("#") and len(value) == 7:
        return (*(int(value[i : i + 2], 16) for i in (1, 3, 5)), 1.0)
    channels = re.fullmatch(r"rgba\(([^)]*)\)", value)
    assert channels, f"unsupported colour {value!r}"
    red, green, blue, alpha = (float(part) for part in channels.group(1).split(","))
    return red, green, blue, alpha


def composite(top, bottom):
    """`top` (possibly translucent) painted over opaque `bottom`."""
    alpha = top[3]
    return (*(top[i] * alpha + bottom[i] * (1 - alpha) for i in range(3)), 1.0)


def luminance(colour) -> float:
    def linear(channel):
        channel /= 255
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in colour[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first, second) -> float:
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def contrast_failures(name: str, props: dict[str, str]) -> list[str]:
    """Every colour pairing the shell paints, with the WCAG minimum it needs."""
    colour = {
        key: rgba(value)
        for key, value in props.items()
        if key.startswith("--") and (value.startswith("#") or value.startswith("rgba"))
    }
    body_text = 7.0 if name == "contrast" else 4.5  # AAA for the high-contrast theme
    pairs = []
    for text in ("--text", "--text-muted"):
        for ground in ("--bg", "--surface", "--surface-2", "--input-bg", "--hover"):
            pairs.append((text, ground, colour[text], colour[ground], body_text))
    for ground in ("--bg", "--surface", "--surface-2"):
        pairs.append(("--accent", ground, colour["--accent"], colour[ground], 4.5))
    for ground in ("--accent", "--accent-strong"):
        pairs.append(("--accent-text", ground, colour["--accent-text"], colour[ground], 4.5))
    for ground in ("--surface", "--surface-2"):
        tinted = composite(colour["--accent-soft"], colour[ground])
        pairs.append(
            (
                "--accent-strong",
                f"--accent-soft on {ground}",
                colour["--accent-strong"],
                tinted,
                4.5,
            )
        )
    for tone in ("--danger", "--success", "--warning"):
        for ground in ("--bg", "--surface"):
            pairs.append((tone, ground, colour[tone], colour[ground], 4.5))
            tinted = composite(colour[f"{tone}-soft"], colour[ground])
            pairs.append((tone, f"{tone}-soft on {ground}", colour[tone], tinted, 4.5))
    pairs.append(("--danger-text", "--danger", colour["--danger-text"], colour["--danger"], 4.5))
    for ground in ("--bg", "--surface", "--surface-2", "--input-bg"):
        # Focus rings and input borders are non-text: 3:1 (WCAG 1.4.11).
        pairs.append(("--focus", ground, colour["--focus"], colour[ground], 3.0))
        pairs.append(("--border-strong", ground, colour["--border-strong"], colour[ground], 3.0))
    return [
        f"{name}: {fg} on {bg} is {contrast(a, b):.2f}, needs {minimum}"
        for fg, bg, a, b, minimum in pairs
        if contrast(a, b) < minimum
    ]


def test_themes_css_defines_exactly_the_nine_themes_of_the_model():
    themes = parse_themes(THEMES_CSS.read_text())

    assert sorted(themes) == sorted(THEME_KEYS)
    modes = [mode for _key, _label, mode in UserPreference.THEMES]
    assert modes.count("dark") == 7
    assert modes.count("light") == 2


def test_every_theme_sets_the_same_properties_and_its_colour_scheme():
    themes = parse_themes(THEMES_CSS.read_text())
    reference = set(themes[UserPreference.DEFAULT_THEME])

    for key, _label, mode in UserPreference.THEMES:
        assert set(themes[key]) == reference, key
        assert themes[key]["color-scheme"] == mode, key


def test_every_theme_is_legible_aa_and_high_contrast_reaches_aaa():
    themes = parse_themes(THEMES_CSS.read_text())

    failures = [line for key in THEME_KEYS for line in contrast_failures(key, themes[key])]

    assert failures == []
    high_contrast = themes["contrast"]
    for ground in ("--bg", "--surface"):
        ratio = contrast(rgba(high_contrast["--text"]), rgba(high_contrast[ground]))
        assert ratio >= 7.0


def test_contrast_check_catches_illegible_text():
    """The checker itself must be able to fail: grey on grey is reported."""
    props = parse_themes(THEMES_CSS.read_text())["daylight"] | {"--text-muted": "#b0b0b0"}

    failures = contrast_failures("daylight", props)

    assert any(line.startswith("daylight: --text-muted on --surface") for line in failures)

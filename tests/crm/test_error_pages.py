"""The 403, 404 and 500 pages: styled, with a way back; the app's layout for a signed-in
member and a public one otherwise; a 403 names the missing right (escaped) and another org's
record is a 404 that says nothing about it; the 500 page renders without the request (no
query, no context processor). Plus the favicon every page asks for."""

import re
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client, RequestFactory
from django.urls import get_resolver, path, reverse

import crm.urls
from crm.permissions import RightMissing, right_description
from tests.factories import ContactFactory


def boom(request):
    raise RuntimeError("the database is on fire")


# Used by the tests marked @pytest.mark.urls(__name__): the app's URLs plus one that fails.
urlpatterns = [path("boom/", boom), *crm.urls.urlpatterns]
handler403 = crm.urls.handler403
handler404 = crm.urls.handler404
handler500 = crm.urls.handler500


def assert_csp_clean(html: str) -> None:
    """Nothing the Content-Security-Policy would block: no inline script or style."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


# 404 ------------------------------------------------------------------------------------------


def test_a_missing_page_is_a_styled_404_inside_the_app_for_a_member(org, members, client_as):
    response = client_as(members["admin"]).get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "We can’t find this page" in html
    assert 'class="sidebar"' in html  # the app's layout, with its navigation
    assert f'href="{reverse("crm:dashboard")}"' in html
    assert "Go to the dashboard" in html
    assert "css/errors.css" in html
    assert "Content-Security-Policy" in response.headers
    assert_csp_clean(html)


def test_a_missing_page_offers_the_page_the_member_came_from(org, members, client_as):
    response = client_as(members["admin"]).get(
        "/no-such-page/", HTTP_REFERER="http://testserver/contacts/"
    )
    assert 'href="http://testserver/contacts/"' in response.content.decode()

    elsewhere = client_as(members["admin"]).get(
        "/no-such-page/", HTTP_REFERER="https://evil.example/"
    )
    assert "evil.example" not in elsewhere.content.decode()


def test_a_missing_page_for_a_visitor_uses_the_public_layout(db, client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "We can’t find this page" in html
    assert 'class="sidebar"' not in html
    assert f'href="{reverse("account_login")}"' in html
    assert_csp_clean(html)


def test_another_orgs_contact_is_a_404_that_names_nothing_of_it(org, other_org, members, client_as):
    theirs = ContactFactory(org=other_org, first_name="Zanzibar", last_name="Quokka")

    response = client_as(members["admin"]).get(
        reverse("contacts:contact_detail", args=[theirs.public_id])
    )

    assert response.status_code == 404
    html = response.content.decode()
    assert "We can’t find this page" in html
    for secret in ("Zanzibar", "Quokka", other_org.name):
        assert secret not in html


def test_a_random_record_id_is_the_same_404(org, members, client_as):
    response = client_as(members["admin"]).get(
        reverse("contacts:contact_detail", args=[uuid.uuid4()])
    )
    assert response.status_code == 404
    assert "We can’t find this page" in response.content.decode()


# 403 ------------------------------------------------------------------------------------------


def test_right_descriptions_name_the_module_and_action():
    assert right_description("contacts", "edit") == "the right to edit contacts"
    assert right_description("contacts", "create") == "the right to add contacts"
    assert right_description("ai", "view") == "the right to see AI"
    assert RightMissing("tasks", "delete").description == "the right to delete tasks"
    assert isinstance(RightMissing("tasks", "delete"), PermissionDenied)


def test_a_403_says_which_right_is_missing_inside_the_app(org, members, client_as):
    response = client_as(members["viewer"]).get(reverse("contacts:contact_create"))

    assert response.status_code == 403
    html = response.content.decode()
    assert "You don’t have permission to do this" in html
    assert "You need the right to add contacts." in html
    assert 'class="sidebar"' in html
    assert "Go to the dashboard" in html
    assert org.name in html  # their own organization: "Your role in Acme Test ..."
    assert_csp_clean(html)


def test_a_403_without_a_named_right_shows_the_refusal(org, members, client_as):
    contact = ContactFactory(org=org)
    response = client_as(members["viewer"]).post(
        reverse("contacts:bulk_action"),
        {"bulk_action": "archive", "ids": [str(contact.public_id)]},
    )

    assert response.status_code == 403
    html = response.content.decode()
    assert "Your role may not use “Archive” on contacts." in html
    assert "Go to the dashboard" in html


def test_the_403_reason_is_escaped(db):
    request = RequestFactory().get("/anything/")
    request.user = AnonymousUser()
    request.org = None

    response = crm.urls.handler403(request, PermissionDenied("<script>alert(1)</script>"))

    html = response.content.decode()
    assert response.status_code == 403
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'class="sidebar"' not in html  # a visitor: the public layout


def test_a_403_for_a_visitor_uses_the_public_layout(db):
    request = RequestFactory().get("/anything/")
    request.user = AnonymousUser()
    request.org = None

    response = crm.urls.handler403(request, RightMissing("settings", "edit"))

    html = response.content.decode()
    assert "You need the right to edit settings." in html
    assert "Sign in" in html


def test_a_404_handler_never_shows_the_exception_text(db):
    request = RequestFactory().get("/anything/")
    request.user = AnonymousUser()
    request.org = None

    response = crm.urls.handler404(request, Http404("No Contact matches the given query."))

    assert response.status_code == 404
    assert "No Contact matches" not in response.content.decode()


# 500 ------------------------------------------------------------------------------------------


def test_the_500_page_renders_without_the_request_and_without_queries(
    db, django_assert_num_queries
):
    request = RequestFactory().get("/boom/")  # no user, no org: nothing to lean on

    with django_assert_num_queries(0):
        response = crm.urls.handler500(request)

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert "css/errors.css" in html
    assert 'href="/"' in html
    assert_csp_clean(html)


def test_the_root_urls_name_our_handlers():
    resolver = get_resolver()
    assert resolver.resolve_error_handler(403) is crm.urls.handler403
    assert resolver.resolve_error_handler(404) is crm.urls.handler404
    assert resolver.resolve_error_handler(500) is crm.urls.handler500


@pytest.mark.urls(__name__)
def test_a_crash_shows_the_static_500_page_with_nothing_of_the_member(org, members):
    client = Client(raise_request_exception=False)
    client.force_login(members["admin"].user)

    response = client.get("/boom/")

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert org.name not in html
    assert members["admin"].user.email not in html
    assert "on fire" not in html
    assert 'class="sidebar"' not in html


def test_the_500_handler_falls_back_to_plain_text_when_its_template_fails(monkeypatch):
    from crm.views import errors

    def broken(self):
        raise OSError("disk gone")

    monkeypatch.setattr(errors.SimpleTemplateResponse, "rendered_content", property(broken))

    response = errors.server_error(RequestFactory().get("/"))

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == errors.PLAIN_500


# Favicon --------------------------------------------------------------------------------------


def test_favicon_ico_leads_to_the_icon_the_pages_link(org, members, client_as, client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"].endswith("/static/img/favicon.svg")
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)

    page = client_as(members["admin"]).get(reverse("crm:dashboard"))
    assert re.search(r'<link rel="icon" href="[^"]*/static/img/favicon\.svg"', page.text)


def test_the_public_pages_link_the_icon_too(db, client):
    page = client.get(reverse("account_login"))
    assert '<link rel="icon"' in page.content.decode()


def test_a_member_page_asks_for_no_favicon_that_is_missing(org, members, client_as):
    page = client_as(members["viewer"]).get(reverse("crm:dashboard"))
    for href in re.findall(r'<link rel="icon" href="([^"]+)"', page.text):
        assert client_as(members["viewer"]).get(href).status_code == 200

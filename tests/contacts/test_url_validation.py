"""Web addresses people give (LinkedIn, company websites, custom Link fields) are http(s)
links or nothing: one validator refuses every other scheme on every write path (the forms,
the services, the CSV import), and one filter refuses them again wherever a stored value
becomes an href, so a value from before (or from a path that forgot) renders as text.
A scan of every template and of the Python that writes links keeps the class closed."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.urls import reverse

from contacts import services as contact_services
from contacts.bulk import ACTIONS
from contacts.fields import CONTACT_FIELDS
from contacts.forms import ContactForm
from contacts.importing.models import ImportRowError
from contacts.models import Company, Contact
from contacts.validators import clean_url, safe_url
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    member,
    role,
)

from .test_import_pipeline import import_file, rows_csv

ISSUE_EXAMPLE = "javascript://%0Aalert(1)"
# The class: other schemes, however they are spelled or hidden, and addresses that are not
# absolute web addresses at all.
NOT_WEB_ADDRESSES = [
    ISSUE_EXAMPLE,
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "  javascript:alert(1)",
    "\t\n javascript:alert(document.cookie)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "&#106;avascript:alert(1)",
    "javascript&colon;alert(1)",
    "%6Aavascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "ftp://acme.com/file",
    "file:///etc/passwd",
    "//evil.com",
    "\\\\evil.com",
    "/relative/path",
    "http:evil.com",
    "https://",
    "https://exa mple.com",
]

pytestmark = pytest.mark.django_db


# The validator ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_WEB_ADDRESSES)
def test_only_http_and_https_addresses_with_a_host_are_web_addresses(value):
    with pytest.raises(ValidationError) as refused:
        clean_url(value)
    assert "is not a web address" in refused.value.messages[0]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://www.linkedin.com/in/ada", "https://www.linkedin.com/in/ada"),
        ("HTTP://Acme.com/Pricing?x=1#top", "HTTP://Acme.com/Pricing?x=1#top"),
        ("linkedin.com/in/ada", "https://linkedin.com/in/ada"),
        ("  acme.com  ", "https://acme.com"),
        ("https://bücher.de/", "https://bücher.de/"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_web_address_without_a_scheme_gets_https(typed, stored):
    assert clean_url(typed) == stored


def test_an_overlong_web_address_is_refused_with_the_limit():
    with pytest.raises(ValidationError) as refused:
        clean_url("https://acme.com/" + "a" * 600)
    assert "at most 500 characters" in refused.value.messages[0]


# Every write path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [ISSUE_EXAMPLE, "JaVaScRiPt:alert(1)", "ftp://acme.com", "//evil.com"]
)
def test_the_contact_form_refuses_a_linkedin_url_that_is_not_a_web_address(client_as, owner, value):
    contact = ContactFactory(org=owner.org, owner=owner.user, linkedin_url="")
    response = client_as(owner, htmx=True).post(
        reverse(
            "contacts:contact_field_edit",
            kwargs={"public_id": contact.public_id, "key": "linkedin_url"},
        ),
        {"linkedin_url": value},
    )

    assert response.status_code == 200
    assert "is not a web address" in response.content.decode()
    contact.refresh_from_db()
    assert contact.linkedin_url == ""


def test_the_contact_form_stores_a_linkedin_address_typed_without_https(client_as, owner):
    contact = ContactFactory(org=owner.org, owner=owner.user)
    client_as(owner, htmx=True).post(
        reverse(
            "contacts:contact_field_edit",
            kwargs={"public_id": contact.public_id, "key": "linkedin_url"},
        ),
        {"linkedin_url": "linkedin.com/in/ada"},
    )

    contact.refresh_from_db()
    assert contact.linkedin_url == "https://linkedin.com/in/ada"


def test_a_read_only_link_saved_before_the_check_does_not_block_other_changes(org):
    executive = role(org, "executive")
    executive.field_rules = {"linkedin_url": "visible"}
    executive.save()
    reader = member(org, "executive")
    contact = ContactFactory(org=org, owner=reader.user, linkedin_url="ftp://files.example/ada")
    policy = Policy(reader)
    shown = ContactForm(org=org, policy=policy, user=reader.user, instance=contact)
    data = {name: shown[name].value() or "" for name in shown.fields}

    form = ContactForm(
        {**data, "first_name": "Augusta"},
        org=org,
        policy=policy,
        user=reader.user,
        instance=contact,
    )

    assert form.fields["linkedin_url"].disabled
    assert form.is_valid(), form.errors
    assert "linkedin_url" not in form.service_data(changed_only=True)


def test_the_company_form_refuses_a_website_that_is_not_a_web_address(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:company_create"),
        {"name": "Evil", "website": "data:text/html,<b>x</b>", "owner": str(owner.user.public_id)},
    )

    assert response.status_code == 200
    assert "is not a web address" in response.content.decode()
    assert not Company.objects.for_org(owner.org).exists()


@pytest.mark.parametrize("value", NOT_WEB_ADDRESSES)
def test_the_services_refuse_every_url_field_that_is_not_a_web_address(org, value):
    system = Actor.system("test")
    link = CustomFieldDefinitionFactory(org=org, key="homepage", field_type="link")
    contact = ContactFactory(org=org)
    company = CompanyFactory(org=org)

    for data in ({"linkedin_url": value}, {f"custom.{link.key}": value}):
        with pytest.raises(ValidationError) as refused:
            contact_services.contact_update(contact=contact, actor=system, data=data)
        assert set(refused.value.message_dict) == set(data)
    with pytest.raises(ValidationError) as refused:
        contact_services.company_update(company=company, actor=system, data={"website": value})
    assert set(refused.value.message_dict) == {"website"}

    contact.refresh_from_db()
    company.refresh_from_db()
    assert (contact.linkedin_url, contact.custom, company.website) == ("", {}, "")


@pytest.mark.parametrize(
    "value", ["javascript://acme.com", "ftp://acme.com", "[$($())]", "http://[::1", "a@[x]"]
)
def test_a_company_domain_with_another_scheme_or_a_broken_host_is_a_field_error(org, value):
    with pytest.raises(ValidationError) as refused:
        contact_services.company_create(
            org=org, actor=Actor.system("test"), data={"name": "Acme", "domain": value}
        )
    assert set(refused.value.message_dict) == {"domain"}


def test_an_imported_row_with_a_bad_web_address_keeps_the_contact_and_reports_the_field(owner):
    CustomFieldDefinitionFactory(org=owner.org, key="homepage", label="Homepage", field_type="link")
    content = rows_csv(
        ["Email", "First", "LinkedIn", "Homepage", "Website"],
        [
            ["ada@example.com", "Ada", ISSUE_EXAMPLE, "linkedin.com/in/ada", "acme.com"],
            ["bob@example.com", "Bob", "linkedin.com/in/bob", "data:text/html,x", ""],
            ["cy@example.com", "Cy", "", "", "javascript://acme.com/%0Aalert(1)"],
            ["di@example.com", "Di", "JaVaScRiPt:alert(1)", "vbscript:x", "//evil.com"],
        ],
    )
    mapping = {
        "Email": "email",
        "First": "first_name",
        "LinkedIn": "linkedin_url",
        "Homepage": "custom.homepage",
        "Website": "company_website",
    }

    job = import_file(owner, content, mapping=mapping)

    assert (job.status, job.created_count, job.error_count) == ("done", 4, 0)
    assert (job.warning_count, job.warning_counts) == (4, {"value_left_out": 6})
    contacts = {c.first_name: c for c in Contact.objects.for_org(owner.org)}
    assert contacts["Ada"].linkedin_url == ""
    assert contacts["Ada"].custom == {"homepage": "https://linkedin.com/in/ada"}
    assert contacts["Ada"].company.domain == "acme.com"
    assert contacts["Bob"].linkedin_url == "https://linkedin.com/in/bob"
    assert contacts["Bob"].custom == {}
    assert contacts["Cy"].company is None
    assert (contacts["Di"].linkedin_url, contacts["Di"].custom, contacts["Di"].company) == (
        "",
        {},
        None,
    )
    reported = dict(ImportRowError.objects.filter(job=job).values_list("row_number", "message"))
    assert reported[2].startswith(f"LinkedIn: “{ISSUE_EXAMPLE}” is not a web address.")
    assert reported[3].startswith("Homepage: ")
    assert reported[4].startswith("Website: ")
    assert all(f"{h}: " in reported[5] for h in ("LinkedIn", "Homepage", "Website"))
    assert not Contact.objects.filter(linkedin_url__icontains="script").exists()


def test_no_bulk_action_writes_a_web_address():
    """Bulk edits set owners, stages, tags and lists only: a bulk action that writes a URL
    field must call validators.clean_url (and extend this test)."""
    url_fields = {spec.key for spec in CONTACT_FIELDS if spec.type == "url"}
    assert {action.field for action in ACTIONS.values()} & url_fields == set()


# Rendering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*NOT_WEB_ADDRESSES, "  ", None, 42])
def test_the_safe_url_filter_refuses_everything_but_http_links(value):
    html = Template("{% load contacts_tags %}[{{ value|safe_url }}]").render(
        Context({"value": value})
    )
    assert html == "[]"


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("https://acme.com/a?b=1&c=2", "https://acme.com/a?b=1&amp;c=2"),
        ("  HTTPS://Acme.com/\n", "HTTPS://Acme.com/"),
        ('https://acme.com/"onmouseover="x', "https://acme.com/&quot;onmouseover=&quot;x"),
    ],
)
def test_the_safe_url_filter_keeps_http_links_escaped(value, rendered):
    html = Template("{% load contacts_tags %}{{ value|safe_url }}").render(
        Context({"value": value})
    )
    assert html == rendered
    assert safe_url(value)


def test_stored_links_from_before_render_as_text_not_links(client_as, owner):
    """Values saved before the validators (the import stored `javascript:` links) stay
    visible as text, and never become an href."""
    CustomFieldDefinitionFactory(org=owner.org, key="homepage", label="Homepage", field_type="link")
    company = CompanyFactory(org=owner.org, website="javascript:alert('site')")
    contact = ContactFactory(
        org=owner.org,
        owner=owner.user,
        company=company,
        linkedin_url=ISSUE_EXAMPLE,
        twitter_handle='x" onclick="alert(1)',
        custom={"homepage": "data:text/html,<script>alert(1)</script>"},
    )
    client = client_as(owner)

    contact_html = client.get(
        reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id}) + "?tab=details"
    ).content.decode()
    company_html = client.get(
        reverse("contacts:company_detail", kwargs={"public_id": company.public_id})
    ).content.decode()

    for html in (contact_html, company_html):
        hrefs = re.findall(r'(?:href|src)="\s*([^"]*)"', html)
        assert not [h for h in hrefs if re.match(r"(?i)\s*(javascript|data|vbscript):", h)]
        assert "<script>alert(1)" not in html
    assert ISSUE_EXAMPLE in contact_html  # shown as text
    assert "javascript:alert(&#x27;site&#x27;)" in company_html
    assert 'href="https://x.com/x%22%20onclick%3D%22alert%281%29"' in contact_html


# Keeping the class closed -------------------------------------------------------------------

# Attributes whose value a browser follows or fetches.
URL_ATTRIBUTES = r"href|src|action|formaction|poster|xlink:href|hx-(?:get|post|put|patch|delete)"
ATTRIBUTE = re.compile(rf"""\s(?:{URL_ATTRIBUTES})\s*=\s*(["'])(.*?)\1""", re.DOTALL)
# A {{ variable }} that can begin the URL: at the start of the value or right after a tag
# ({% if %}, {% else %}…) or another variable. What follows a {% url %} or {% static %} has
# the server's URL in front of it.
LEADING_VARIABLE = re.compile(r"(?:^|%\}|\}\})\s*\{\{\s*([^}]*?)\s*\}\}")
FIXED_PREFIX = re.compile(r"\{%\s*(?:url|static|provider_login_url)\b.*?%\}", re.DOTALL)


def leading_variables(value: str) -> list[str]:
    return LEADING_VARIABLE.findall(FIXED_PREFIX.sub("/fixed", value))


# Variables that are URLs the server made (reverse(), a checked `next`, an allauth URL), by
# name, with why they are safe. Anything else at the start of an href must go through
# |safe_url.
SAFE_VARIABLES = {
    "list_url": "reverse() of the contact list in the views",
    "detail_url": "reverse() of the record or import page",
    "item.edit_url": "reverse() of the inline-edit view",
    "item.url": "crm.navigation: reverse() of each sidebar entry",
    "item.row_url": "reverse() of a row's page",
    "history_url": "reverse() of the import history",
    "action_url": "reverse() of the form's own view",
    "toggle_url": "reverse() of a toggle view",
    "count_url": "reverse() of the bulk count view",
    "signup_url": "allauth / reverse() sign-up URL",
    "login_url": "allauth / reverse() login URL",
    "older_query": "a query string the view builds from a cursor ('?…')",
    "newer_query": "a query string the view builds from a cursor ('?…')",
    "more_query": "a query string the view builds from a cursor ('?…')",
    "create_url": "reverse() of the create view, or None",
    "w.url": "dashboard figures: reverse() of a list",
    "search_url": "reverse() of the search page",
    "row.url": "reverse() of the contact page",
    "roles_url": "reverse() of the roles page",
    "members_url": "reverse() of the members page",
    "contacts_url": "reverse() of the contact list",
    "return_url": "crm.views.jobs.safe_return_url: same-site only",
    "next": "contacts.views.common.safe_next: same-site only",
    "request.path": "the current path",
    "n.url": "notifications are written by server code with reverse() URLs",
    "link": "invitation e-mail: build_absolute_uri(reverse())",
    "export_urls.csv": "reverse() of the export view",
    "export_urls.json": "reverse() of the export view",
    "c.url": "search: reverse() of the contact page",
    "co.url": "search: reverse() of the company page",
    "c.url|default:search_url": "both reverse()",
    "co.url|default:search_url": "both reverse()",
    "form_url": "reverse() of the form's own view",
    "palette_search_url": "reverse() of the search page (the command palette)",
    # Pipeline pages.
    "next_url": "pipeline boards: reverse() of the board, or contacts.views.common.safe_next",
    "action": "pipeline board move page: reverse() of the move view plus the board's query",
    "column_url": "reverse() of a board column's next page",
    "board_query": "the board's query string, urlencoded by the view after a reverse()",
    "table_url": "reverse() of the deal table plus the board's query",
    "card.detail_url": "reverse() of the deal or contact page",
    "card.move_page_url": "reverse() of the move page plus a urlencoded safe `next`",
    "deals_url": "{% url %} of the deal table, or reverse() of a record's Deals section",
    "forecast_url": "{% url %} of the forecast",
    "report_url": "{% url %} of the pipeline report",
    "lifecycle_url": "{% url %} of the contact lifecycle board",
    "summary_query": "{% querystring %}: the current page's own query, changed",
    "deals_query": "{% querystring %}: the current page's own query, changed",
    "rep_query": "{% querystring %}: the current page's own query, changed",
    "manager_query": "{% querystring %}: the current page's own query, changed",
    "quota_query": "{% querystring %}: the current page's own query, changed",
    "export_query": "{% querystring %}: the current page's own query, changed",
    "cell.url": "deal table: reverse() of the deal, contact or company page",
    "result.url": "deal bulk results: reverse() of the deal page",
    "d.url": "search: reverse() of the deal page",
    "d.url|default:search_url": "both reverse()",
    "deal_list_url": "reverse() of the deal table",
    # Custom object links (pipeline.views.object_links).
    "objects_url": "{% url %} or reverse() of a contact's or deal's Linked records section",
    "associate_url": "reverse() of the section's associate view",
    "links_target_url": "reverse() of the linked contact's or deal's page",
    "link.url": "reverse() of the linked record's, contact's or deal's page",
    # Data Health (contacts.views.data_health).
    "refresh_url": "Data Health: reverse() of the list plus its urlencoded band and view",
    "band_url": "Data Health: reverse() of the list plus its urlencoded band",
    "pairs_url": "Data Health: reverse() of the list plus its urlencoded band",
    "groups_url": "Data Health: reverse() of the list plus its urlencoded band and view",
    "primary_url": "reverse() of the merged primary's contact page",
    "compare_url": "reverse() of the merge compare page",
    "match.url": "duplicate warning: reverse() of the matching contact's page",
}


def _template_files():
    for folder in settings.TEMPLATES[0]["DIRS"]:
        yield from Path(folder).rglob("*.html")
        yield from Path(folder).rglob("*.txt")


def test_every_link_a_template_builds_from_a_variable_is_checked_or_known_safe():
    unchecked = []
    for path in _template_files():
        text = path.read_text()
        for match in ATTRIBUTE.finditer(text):
            for variable in leading_variables(match.group(2)):
                if "safe_url" in variable or variable in SAFE_VARIABLES:
                    continue
                line = text.count("\n", 0, match.start()) + 1
                unchecked.append(f"{path}:{line}: {{{{ {variable} }}}}")
    assert not unchecked, (
        "An href/src starts with a variable that is neither |safe_url nor a known "
        "server-made URL:\n" + "\n".join(unchecked)
    )


def test_the_template_scan_catches_an_unchecked_user_link():
    risky = '<a class="x" href="{{ contact.linkedin_url }}">in</a>'
    after_tag = '<a href="{% if x %}{{ contact.website }}{% endif %}">site</a>'
    safe = (
        '<a href="{{ contact.linkedin_url|safe_url }}">in</a> <use href="#icon-{{ i }}">'
        "<a href=\"{% url 'crm:audit_export' %}{{ query }}\">"
    )
    found = [
        v
        for html in (risky, after_tag, safe)
        for m in ATTRIBUTE.finditer(html)
        for v in leading_variables(m.group(2))
        if "safe_url" not in v and v not in SAFE_VARIABLES
    ]
    assert found == ["contact.linkedin_url", "contact.website"]


# Python that writes an href or src itself (format_html and f-strings), with why it is safe.
PYTHON_LINK_WRITERS = {
    "contacts/templatetags/contacts_tags.py": "notes link only text that starts with http(s)://",
    "contacts/presenters.py": "user links through safe_url(); list rows, field rows and company "
    "links point only to reverse() URLs",
}
PYTHON_LINK = re.compile(r"""(?:href|src)=\\?["']\{""")


def test_python_that_writes_links_is_known():
    root = Path(settings.BASE_DIR)
    writers = set()
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith((".venv/", "tests/", ".data/")) or "/migrations/" in relative:
            continue
        if PYTHON_LINK.search(path.read_text(errors="replace")):
            writers.add(relative)
    assert writers <= set(PYTHON_LINK_WRITERS), (
        "New Python writes href/src attributes: pass user values through "
        "contacts.validators.safe_url and list the file here with why it is safe: "
        f"{sorted(writers - set(PYTHON_LINK_WRITERS))}"
    )


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("acme.com:8080/pricing", "https://acme.com:8080/pricing"),
        ("https://acme.com:8443", "https://acme.com:8443"),
    ],
)
def test_a_port_typed_without_a_scheme_is_not_taken_for_one(typed, stored):
    assert clean_url(typed) == stored


def test_a_scheme_spelled_with_digits_after_its_colon_is_still_refused():
    with pytest.raises(ValidationError):
        clean_url("javascript:1//alert(1)")

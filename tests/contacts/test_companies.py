import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import Company
from crm.models import AuditEvent
from tests.factories import ActivityFactory, CompanyFactory, ContactFactory, member


def detail(company):
    return reverse("contacts:company_detail", kwargs={"public_id": company.public_id})


def action(name, company):
    return reverse(f"contacts:{name}", kwargs={"public_id": company.public_id})


LIST = "/contacts/companies/"


def test_list_url_is_the_sidebar_target():
    assert reverse("contacts:company_list") == LIST


def test_list_searches_names_and_domains_by_prefix(client_as, org, owner):
    CompanyFactory(org=org, name="Acme Rockets", domain="acme.example")
    CompanyFactory(org=org, name="Globex", domain="globex.example")
    CompanyFactory(org=org, name="Initech", domain="initech-software.example")
    client = client_as(owner)

    by_name = client.get(LIST, {"q": "acm"}).content.decode()
    by_domain = client.get(LIST, {"q": "initech-soft"}).content.decode()

    assert "Acme Rockets" in by_name and "Globex" not in by_name
    assert "Initech" in by_domain and "Acme Rockets" not in by_domain


def test_list_shows_contact_counts_of_active_contacts(client_as, org, owner):
    acme = CompanyFactory(org=org, name="Acme")
    for _ in range(3):
        ContactFactory(org=org, company=acme)
    ContactFactory(org=org, company=acme, is_archived=True)

    html = client_as(owner).get(LIST).content.decode()
    row = html[html.index(">Acme<") :]
    assert '<td class="num">3</td>' in row[: row.index("</tr>")]


def test_list_query_count_does_not_grow_with_rows(client_as, org, owner):
    client = client_as(owner)

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LIST).status_code == 200
        return len(ctx.captured_queries)

    company = CompanyFactory(org=org, owner=owner.user)
    ContactFactory(org=org, company=company)
    queries()
    few = queries()
    for _ in range(20):
        company = CompanyFactory(org=org, owner=member(org, "team").user)
        ContactFactory(org=org, company=company)
    assert queries() == few


def test_list_pages_with_a_keyset_cursor(client_as, org, owner):
    for i in range(55):
        CompanyFactory(org=org, name=f"Company {i:02d}")
    client = client_as(owner, htmx=True)

    first = client.get(LIST, HTTP_HX_TARGET="company-results").content.decode()
    assert "Company 49" in first and "Company 50" not in first
    href = (
        first.split('id="company-more"')[1].split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
    )

    assert href.startswith("?after=")
    second = client.get(LIST + href, HTTP_HX_TARGET="company-more").content.decode()
    assert "Company 50" in second and "Company 54" in second and "Company 49" not in second
    assert 'id="company-more"' not in second


def test_archived_companies_are_listed_only_when_asked(client_as, org, owner):
    CompanyFactory(org=org, name="Old Corp", is_archived=True)
    client = client_as(owner)
    assert "Old Corp" not in client.get(LIST).content.decode()
    assert "Old Corp" in client.get(LIST, {"archived": "1"}).content.decode()


def test_detail_shows_contacts_counts_and_their_recent_activity(client_as, org, owner):
    acme = CompanyFactory(org=org, name="Acme")
    ada = ContactFactory(org=org, company=acme, first_name="Ada", lifecycle_stage="customer")
    ContactFactory(org=org, company=acme, first_name="Bob")
    ActivityFactory(org=org, contact=ada, subject="Kickoff meeting", type="meeting")

    html = client_as(owner).get(detail(acme)).content.decode()

    assert "Ada" in html and "Bob" in html
    assert "Kickoff meeting" in html
    assert "<dt>Customers</dt><dd>1</dd>" in html


def test_detail_lists_only_contacts_in_the_members_scope(client_as, org, members):
    rep = members["team"]
    acme = CompanyFactory(org=org, owner=rep.user)
    ContactFactory(org=org, company=acme, first_name="Mine", owner=rep.user)
    ContactFactory(org=org, company=acme, first_name="Theirs", owner=members["admin"].user)

    html = client_as(rep).get(detail(acme)).content.decode()

    assert "Mine" in html and "Theirs" not in html


def test_create_normalizes_the_domain(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:company_create"),
        {
            "name": "Acme",
            "domain": "https://www.ACME.com/about",
            "owner": str(owner.user.public_id),
        },
    )

    company = Company.objects.for_org(owner.org).get()
    assert response.status_code == 302
    assert company.domain == "acme.com"
    assert AuditEvent.objects.for_org(owner.org).filter(verb="company.created").exists()


def test_duplicate_domain_is_a_form_error(client_as, org, owner):
    CompanyFactory(org=org, name="Acme", domain="acme.com")
    response = client_as(owner).post(
        reverse("contacts:company_create"), {"name": "Acme again", "domain": "acme.com"}
    )

    assert response.status_code == 200
    assert "Acme already uses acme.com." in response.content.decode()
    assert Company.objects.for_org(org).count() == 1


def test_edit_archive_and_restore(client_as, org, owner):
    company = CompanyFactory(org=org, name="Acme", domain="acme.com")
    client = client_as(owner)

    client.post(
        action("company_edit", company),
        {"name": "Acme Inc", "domain": "acme.com", "industry": "Aerospace"},
    )
    company.refresh_from_db()
    assert (company.name, company.industry) == ("Acme Inc", "Aerospace")

    assert client.get(action("company_archive", company)).status_code == 200
    client.post(action("company_archive", company))
    company.refresh_from_db()
    assert company.is_archived

    client.post(action("company_restore", company))
    company.refresh_from_db()
    assert not company.is_archived


def test_viewer_sees_no_company_edit_and_gets_403(client_as, org, members):
    company = CompanyFactory(org=org, name="Acme")
    client = client_as(members["viewer"])

    assert action("company_edit", company) not in client.get(detail(company)).content.decode()
    assert client.post(action("company_edit", company), {"name": "Hacked"}).status_code == 403
    assert client.post(action("company_archive", company)).status_code == 403
    company.refresh_from_db()
    assert company.name == "Acme" and not company.is_archived


def test_other_org_gets_404(client_as, org, other_org):
    company = CompanyFactory(org=org)
    client = client_as(member(other_org, "owner"))
    assert client.get(detail(company)).status_code == 404
    assert client.post(action("company_archive", company)).status_code == 404


def test_company_suggestions_match_what_is_typed(client_as, org, owner, other_org):
    CompanyFactory(org=org, name="Acme Rockets")
    CompanyFactory(org=org, name="Globex")
    CompanyFactory(org=other_org, name="Acme Elsewhere")

    html = (
        client_as(owner)
        .get(reverse("contacts:company_options"), {"company": "acm"})
        .content.decode()
    )

    assert '<option value="Acme Rockets">' in html
    assert "Globex" not in html and "Elsewhere" not in html


@pytest.mark.parametrize("role_key", ["board", "client"])
def test_members_without_companies_access_get_403(client_as, org, members, role_key):
    assert client_as(members[role_key]).get(LIST).status_code == 403

"""The deal page: its tabs and header, field rules (a hidden field never reaches the page),
create and edit (prefilled from a contact or a company), close with a reason, reopen,
archive, contacts with roles, notes and tasks on the deal, and the Deals section of contact
and company pages. Another organization's deal, or one outside the member's scope, is a 404."""

from decimal import Decimal

import pytest
from django.urls import reverse

from contacts.models import Activity, Note, Task
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Deal, DealContact, StageHistory
from pipeline.services.deals import deal_create
from tests.factories import (
    AttachmentFactory,
    ChecklistFactory,
    ChecklistItemFactory,
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    DealFactory,
    DealReasonFactory,
    LineItemFactory,
    MembershipFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db

TABS = ["timeline", "notes", "tasks", "checklists", "attachments", "lines"]


@pytest.fixture
def world(org):
    admin = member(org, "admin")
    pipeline = PipelineFactory(org=org, name="Sales", is_default=True)
    stages = [
        StageFactory(org=org, pipeline=pipeline, name=name, position=n, probability=p)
        for n, (name, p) in enumerate([("Qualify", 10), ("Propose", 50)])
    ]
    return org, admin, pipeline, stages


def _deal(org, admin, **data):
    return deal_create(
        org=org,
        actor=Actor.for_user(admin.user),
        data={"title": "Big deal", **data},
        policy=Policy(admin),
    )


def _url(name, *args):
    return reverse(f"pipeline:{name}", args=args)


def test_every_tab_renders_with_the_header(world, client_as):
    org, admin, _pipeline, _stages = world
    contact = ContactFactory(org=org, owner=admin.user)
    deal = _deal(org, admin, value="1200", contact=contact, expected_close_date="2020-01-01")
    ChecklistItemFactory(org=org, checklist=ChecklistFactory(org=org, deal=deal), is_done=True)
    LineItemFactory(org=org, deal=deal, name="Seat licence")
    AttachmentFactory(org=org, deal=deal, file_name="quote.pdf")
    client = client_as(admin)
    for tab in TABS:
        response = client.get(_url("deal_detail", deal.public_id) + f"?tab={tab}")
        assert response.status_code == 200, tab
        body = response.content.decode()
        assert "Big deal" in body and "Qualify" in body
    page = client.get(_url("deal_detail", deal.public_id)).content.decode()
    assert "1,200.00 USD" in page or "1,200.00" in page
    assert "Close date passed" in page  # a health reason
    assert "No open task" in page
    assert "Deal created: Big deal" in page  # the timeline
    assert reverse("pipeline:deal_close", args=[deal.public_id]) + "?status=won" in page
    lines = client.get(_url("deal_detail", deal.public_id) + "?tab=lines").content.decode()
    assert "Seat licence" in lines
    files = client.get(_url("deal_detail", deal.public_id) + "?tab=attachments").content.decode()
    assert "quote.pdf" in files
    checklists = client.get(_url("deal_detail", deal.public_id) + "?tab=checklists").content
    assert b"1/1" in checklists


def test_htmx_tab_switch_returns_only_the_tabs(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    response = client_as(admin, htmx=True).get(
        _url("deal_detail", deal.public_id) + "?tab=notes", HTTP_HX_TARGET="deal-tabs"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="deal-tabs"' in body and "<html" not in body


def test_timeline_shows_the_deal_entry_once_not_the_copies(world, client_as):
    org, admin, _pipeline, stages = world
    deal = _deal(org, admin, contact=ContactFactory(org=org))
    for _ in range(2):
        DealContact.objects.create(org=org, deal=deal, contact=ContactFactory(org=org))
    from pipeline.services.deals import deal_update

    deal_update(
        deal=deal, actor=Actor.for_user(admin.user), data={"stage": stages[1]}, policy=Policy(admin)
    )
    assert Activity.objects.for_org(org).filter(deal=deal, data__copy=True).count() == 2
    body = client_as(admin).get(_url("deal_detail", deal.public_id)).content.decode()
    assert body.count("moved from Qualify to Propose") == 1


def _hiding_role(org, **rules):
    permissions = role(org, "admin").permissions
    return custom_role(org, permissions=permissions, field_rules=rules)


def test_a_hidden_value_never_reaches_the_page_or_its_forms(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin, value="98765.43")
    LineItemFactory(org=org, deal=deal, name="Hidden line", unit_price=98765, total=98765)
    secretive = MembershipFactory(org=org, role=_hiding_role(org, **{"deal.value": "hidden"}))
    client = client_as(secretive)
    for tab in TABS:
        body = client.get(_url("deal_detail", deal.public_id) + f"?tab={tab}").content.decode()
        assert "98,765" not in body and "98765" not in body, tab
        assert "Hidden line" not in body
    form = client.get(_url("deal_edit", deal.public_id)).content.decode()
    assert 'name="value"' not in form and 'name="currency"' not in form
    assert 'name="title"' in form
    line = deal.line_items.get()
    assert client.get(_url("line_item_edit", line.public_id)).status_code == 404


def test_a_locked_field_is_disabled_and_a_forged_value_ignored(world, client_as):
    org, admin, _pipeline, stages = world
    deal = _deal(org, admin, value="500")
    locked = MembershipFactory(org=org, role=_hiding_role(org, **{"deal.value": "visible"}))
    client = client_as(locked)
    form = client.get(_url("deal_edit", deal.public_id)).content.decode()
    assert 'name="value"' in form and "disabled" in form.split('name="value"')[1][:200]
    response = client.post(
        _url("deal_edit", deal.public_id),
        {"title": "Renamed", "stage": str(stages[0].public_id), "value": "1", "priority": "high"},
    )
    assert response.status_code == 302
    deal.refresh_from_db()
    assert deal.title == "Renamed" and deal.value == Decimal("500.00")


def test_custom_fields_of_the_deal_entity_are_on_the_form_and_page(world, client_as):
    org, admin, _pipeline, stages = world
    CustomFieldDefinitionFactory(org=org, entity="deal", key="budget_code", label="Budget code")
    client = client_as(admin)
    form = client.get(_url("deal_create")).content.decode()
    assert 'name="custom__budget_code"' in form
    response = client.post(
        _url("deal_create"),
        {
            "title": "Custom one",
            "stage": str(stages[0].public_id),
            "currency": "USD",
            "priority": "normal",
            "owner": str(admin.user.public_id),
            "custom__budget_code": "BC-7",
            "tags": "vip, renewal",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    deal = Deal.objects.for_org(org).get(title="Custom one")
    assert deal.custom == {"budget_code": "BC-7"}
    assert sorted(t.name for t in deal.tags.all()) == ["renewal", "vip"]
    page = client.get(_url("deal_detail", deal.public_id)).content.decode()
    assert "Budget code" in page and "BC-7" in page


def test_create_from_a_contact_is_prefilled_with_it_and_its_company(world, client_as):
    org, admin, _pipeline, stages = world
    company = CompanyFactory(org=org, name="Initech", owner=admin.user)
    contact = ContactFactory(org=org, first_name="Peter", last_name="Gibbons", company=company)
    client = client_as(admin)
    page = client.get(_url("deal_create") + f"?contact={contact.public_id}").content.decode()
    assert f'value="{contact.public_id}" selected' in page
    assert 'value="Initech"' in page
    assert "Initech deal" in page
    response = client.post(
        _url("deal_create") + f"?contact={contact.public_id}",
        {
            "title": "Initech deal",
            "stage": str(stages[1].public_id),
            "currency": "USD",
            "value": "2,500.50",
            "priority": "normal",
            "owner": str(admin.user.public_id),
            "contact": str(contact.public_id),
            "contact_role": "decision_maker",
            "company": "Initech",
        },
    )
    assert response.status_code == 302
    deal = Deal.objects.for_org(org).get(title="Initech deal")
    assert response["Location"] == _url("deal_detail", deal.public_id)
    assert (deal.contact, deal.company, deal.stage) == (contact, company, stages[1])
    assert deal.value == Decimal("2500.50")
    link = DealContact.objects.for_org(org).get(deal=deal, contact=contact)
    assert link.role == "decision_maker"


def test_create_from_a_company_is_prefilled(world, client_as):
    org, admin, *_ = world
    company = CompanyFactory(org=org, name="Umbrella")
    page = client_as(admin).get(_url("deal_create") + f"?company={company.public_id}")
    body = page.content.decode()
    assert 'value="Umbrella"' in body and "Umbrella deal" in body


def test_prefill_ignores_another_orgs_contact(world, client_as):
    _org, admin, *_ = world
    stranger = ContactFactory(org=OrganizationFactory(), first_name="Zed", last_name="Stranger")
    body = client_as(admin).get(_url("deal_create") + f"?contact={stranger.public_id}").content
    assert b"Stranger" not in body and str(stranger.public_id).encode() not in body


def test_bad_input_comes_back_on_the_form_and_writes_nothing(world, client_as):
    org, admin, _pipeline, stages = world
    response = client_as(admin).post(
        _url("deal_create"),
        {"title": "", "stage": str(stages[0].public_id), "currency": "USD", "value": "lots"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "This field is required." in body or "needs a title" in body
    assert not Deal.objects.for_org(org).exists()


def test_close_asks_for_a_reason_then_marks_won_and_reopens(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    reason = DealReasonFactory(org=org, kind="won", name="Best price")
    DealReasonFactory(org=org, kind="lost", name="Too slow")
    client = client_as(admin)
    form = client.get(_url("deal_close", deal.public_id) + "?status=won").content.decode()
    assert "Best price" in form and "Too slow" not in form
    missing = client.post(_url("deal_close", deal.public_id), {"status": "won", "reason": ""})
    assert missing.status_code == 200
    deal.refresh_from_db()
    assert deal.status == "open"
    done = client.post(
        _url("deal_close", deal.public_id), {"status": "won", "reason": str(reason.public_id)}
    )
    assert done.status_code == 302
    deal.refresh_from_db()
    assert deal.status == "won" and deal.close_reason == reason
    client.post(_url("deal_reopen", deal.public_id))
    deal.refresh_from_db()
    assert deal.status == "open"
    moves = StageHistory.objects.for_org(org).filter(deal=deal).order_by("occurred_at", "id")
    assert [m.to_status for m in moves] == ["open", "won", "open"]


def test_close_form_for_htmx_is_a_fragment(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    DealReasonFactory(org=org, kind="lost", name="No budget")
    response = client_as(admin, htmx=True).get(_url("deal_close", deal.public_id) + "?status=lost")
    body = response.content.decode()
    assert 'id="deal-close"' in body and "<html" not in body and "No budget" in body


def test_archive_and_restore(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    client = client_as(admin)
    assert b"Archive" in client.get(_url("deal_archive", deal.public_id)).content
    client.post(_url("deal_archive", deal.public_id))
    deal.refresh_from_db()
    assert deal.is_archived
    assert client.get(_url("deal_detail", deal.public_id)).status_code == 200
    client.post(_url("deal_restore", deal.public_id))
    deal.refresh_from_db()
    assert not deal.is_archived


def test_contacts_with_roles_are_added_and_removed(world, client_as):
    org, admin, *_ = world
    primary = ContactFactory(org=org)
    deal = _deal(org, admin, contact=primary)
    other = ContactFactory(org=org, first_name="Rita", last_name="Role")
    client = client_as(admin)
    client.post(
        _url("deal_contact_add", deal.public_id),
        {"contact": str(other.public_id), "role": "champion"},
    )
    link = DealContact.objects.for_org(org).get(deal=deal, contact=other)
    assert link.role == "champion"
    page = client.get(_url("deal_detail", deal.public_id)).content.decode()
    assert "Rita Role" in page and "Champion" in page
    client.post(_url("deal_contact_remove", link.public_id))
    assert not DealContact.objects.for_org(org).filter(pk=link.pk).exists()
    primary_link = DealContact.objects.for_org(org).get(deal=deal, contact=primary)
    client.post(_url("deal_contact_remove", primary_link.public_id))
    assert DealContact.objects.for_org(org).filter(pk=primary_link.pk).exists()


def test_notes_and_tasks_on_a_deal(world, client_as):
    org, admin, *_ = world
    contact = ContactFactory(org=org)
    deal = _deal(org, admin, contact=contact)
    client = client_as(admin)
    client.post(_url("deal_note_create", deal.public_id), {"body": "Budget <b>approved</b>"})
    note = Note.objects.for_org(org).get(deal=deal)
    page = client.get(_url("deal_detail", deal.public_id) + "?tab=notes").content.decode()
    assert "Budget &lt;b&gt;approved&lt;/b&gt;" in page and "<b>approved</b>" not in page
    # The note is on the deal's timeline and its contact's.
    assert Activity.objects.for_org(org).filter(deal=deal, type="note", contact=contact).exists()
    client.post(_url("deal_note_edit", note.public_id), {"body": "Budget signed"})
    assert Activity.objects.for_org(org).get(deal=deal, type="note").body == "Budget signed"
    client.post(_url("deal_note_delete", note.public_id))
    assert not Note.objects.for_org(org).filter(deal=deal).exists()
    assert not Activity.objects.for_org(org).filter(deal=deal, type="note").exists()

    client.post(
        _url("deal_task_create", deal.public_id), {"title": "Send contract", "priority": "normal"}
    )
    task = Task.objects.for_org(org).get(deal=deal)
    assert task.assignee == admin.user
    tasks = client.get(_url("deal_detail", deal.public_id) + "?tab=tasks").content.decode()
    assert "Send contract" in tasks
    header = client.get(_url("deal_detail", deal.public_id)).content.decode()
    assert "No open task" not in header


def test_another_orgs_deal_and_an_out_of_scope_deal_are_404(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    outsider = member(OrganizationFactory(), "owner")
    rep = member(org, "team")  # own scope: the admin's deal is not theirs
    for who in (outsider, rep):
        client = client_as(who)
        assert client.get(_url("deal_detail", deal.public_id)).status_code == 404
        assert client.get(_url("deal_edit", deal.public_id)).status_code == 404
        assert (
            client.post(_url("deal_note_create", deal.public_id), {"body": "x"}).status_code == 404
        )
    mine = _deal(org, rep, title="Rep's own")
    assert client_as(rep).get(_url("deal_detail", mine.public_id)).status_code == 200


def test_a_viewer_sees_the_page_but_no_actions_and_cannot_post(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    viewer = member(org, "viewer")
    client = client_as(viewer)
    page = client.get(_url("deal_detail", deal.public_id)).content.decode()
    assert _url("deal_edit", deal.public_id) not in page
    assert client.post(_url("deal_note_create", deal.public_id), {"body": "x"}).status_code == 403
    assert client.get(_url("deal_edit", deal.public_id)).status_code == 403


def test_contact_and_company_pages_list_their_deals_in_scope(world, client_as):
    org, admin, *_ = world
    company = CompanyFactory(org=org, owner=admin.user)
    contact = ContactFactory(org=org, company=company, owner=admin.user, lifecycle_stage="lead")
    _deal(org, admin, title="Visible deal", contact=contact, company=company)
    client = client_as(admin)
    contact_page = client.get(reverse("contacts:contact_detail", args=[contact.public_id]))
    assert _url("contact_deals", contact.public_id).encode() in contact_page.content
    section = client_as(admin, htmx=True).get(_url("contact_deals", contact.public_id))
    body = section.content.decode()
    assert "Visible deal" in body and "Create deal" in body
    assert _url("contact_convert", contact.public_id) in body  # a Lead converts
    company_section = client.get(_url("company_deals", company.public_id)).content.decode()
    assert "Visible deal" in company_section
    assert f"?company={company.public_id}" in company_section
    company_page = client.get(reverse("contacts:company_detail", args=[company.public_id]))
    assert _url("company_deals", company.public_id).encode() in company_page.content
    # Another member with own scope on deals sees the contact but not the admin's deal.
    rep = member(org, "team")
    from contacts.models import Contact

    Contact.objects.filter(pk=contact.pk).update(owner=rep.user)
    rep_view = client_as(rep, htmx=True).get(_url("contact_deals", contact.public_id))
    assert rep_view.status_code == 200 and "Visible deal" not in rep_view.content.decode()


def test_a_customer_contact_has_no_convert_button(world, client_as):
    org, admin, *_ = world
    contact = ContactFactory(org=org, lifecycle_stage="customer")
    body = client_as(admin, htmx=True).get(_url("contact_deals", contact.public_id)).content
    assert _url("contact_convert", contact.public_id).encode() not in body


def test_deal_page_escapes_what_people_typed(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin, title="<script>alert(1)</script>")
    body = client_as(admin).get(_url("deal_detail", deal.public_id)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_other_org_pipeline_stage_cannot_be_posted(world, client_as):
    org, admin, *_ = world
    foreign_stage = StageFactory(org=OrganizationFactory())
    response = client_as(admin).post(
        _url("deal_create"),
        {"title": "Sneaky", "stage": str(foreign_stage.public_id), "currency": "USD"},
    )
    assert response.status_code == 200
    assert not Deal.objects.for_org(org).filter(title="Sneaky").exists()


def test_deal_factory_deal_in_scope_of_its_owner_only(world, client_as):
    org, _admin, *_ = world
    rep = member(org, "team")
    deal = DealFactory(org=org, owner=rep.user)
    assert client_as(rep).get(_url("deal_detail", deal.public_id)).status_code == 200
    assert (
        client_as(member(org, "team")).get(_url("deal_detail", deal.public_id)).status_code == 404
    )


def test_closing_a_closed_deal_says_so_instead_of_the_form(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    reason = DealReasonFactory(org=org, kind="lost", name="No budget")
    client = client_as(admin)
    client.post(
        _url("deal_close", deal.public_id), {"status": "lost", "reason": str(reason.public_id)}
    )
    response = client.get(_url("deal_close", deal.public_id) + "?status=won")
    assert response.status_code == 200
    assert "already lost" in response.content.decode()
    again = client.post(
        _url("deal_close", deal.public_id), {"status": "lost", "reason": str(reason.public_id)}
    )
    assert again.status_code == 200
    assert StageHistory.objects.for_org(org).filter(deal=deal, to_status="lost").count() == 1


def test_closing_without_reasons_in_the_org_explains_where_they_come_from(world, client_as):
    org, admin, *_ = world
    deal = _deal(org, admin)
    body = client_as(admin).get(_url("deal_close", deal.public_id) + "?status=won").content
    assert b"Settings" in body and b"Mark won" not in body


def test_a_contact_outside_the_members_scope_is_not_named_and_does_not_block_edits(
    world, client_as
):
    org, admin, _pipeline, stages = world
    company = CompanyFactory(org=org, name="Secret Corp", owner=admin.user)
    contact = ContactFactory(org=org, first_name="Hidden", last_name="Person", owner=admin.user)
    deal = _deal(org, admin, contact=contact, company=company)
    permissions = role(org, "admin").permissions
    permissions["contacts"]["scope"] = "own"
    permissions["companies"]["scope"] = "own"
    deals_all_contacts_own = MembershipFactory(
        org=org, role=custom_role(org, permissions=permissions)
    )
    client = client_as(deals_all_contacts_own)
    page = client.get(_url("deal_detail", deal.public_id)).content.decode()
    assert "Hidden Person" not in page and "Secret Corp" not in page
    form = client.get(_url("deal_edit", deal.public_id)).content.decode()
    assert 'name="contact"' not in form and 'name="company"' not in form
    assert "Hidden Person" not in form and "Secret Corp" not in form
    response = client.post(
        _url("deal_edit", deal.public_id),
        {
            "title": "Still works",
            "stage": str(stages[0].public_id),
            "currency": "USD",
            "priority": "normal",
        },
    )
    assert response.status_code == 302
    deal.refresh_from_db()
    assert (deal.title, deal.contact, deal.company) == ("Still works", contact, company)

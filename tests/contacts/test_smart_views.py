"""Smart views: save, switch, update, rename, share and delete, with the rules on who may do
what, validation that saves nothing on bad input, and an audit trail."""

import json

import pytest
from django.urls import reverse

from contacts.models import SmartView
from crm.models import AuditEvent
from tests.factories import ContactFactory, SmartViewFactory, member

pytestmark = pytest.mark.django_db

LIST = reverse("contacts:contact_list")
CREATE = reverse("contacts:smart_view_create")

QUALIFIED = {
    "groups": [{"conditions": [{"field": "lifecycle_stage", "op": "eq", "value": "qualified"}]}]
}


def edit_url(view):
    return reverse("contacts:smart_view_edit", args=[view.public_id])


def delete_url(view):
    return reverse("contacts:smart_view_delete", args=[view.public_id])


def shown(response) -> set[str]:
    return {row["contact"].first_name for row in response.context["rows"]}


@pytest.fixture
def stages(org):
    ContactFactory(org=org, first_name="Quinn", lifecycle_stage="qualified", lead_score=80)
    ContactFactory(org=org, first_name="Lee", lifecycle_stage="lead", lead_score=20)
    return org


def test_saving_a_view_stores_the_current_filter_columns_and_sort(stages, owner, client_as):
    response = client_as(owner).post(
        CREATE,
        {
            "name": "Hot leads",
            "filters": json.dumps(QUALIFIED),
            "score_min": "50",
            "sort": "-lead_score",
            "columns": "email,lead_score",
        },
    )
    view = SmartView.objects.get(org=stages, name="Hot leads")
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?view={view.public_id}"
    assert view.owner == owner.user and not view.is_shared
    assert view.filters == {
        "groups": [
            {
                "conditions": [
                    {"field": "lifecycle_stage", "op": "eq", "value": "qualified"},
                    {"field": "lead_score", "op": "gt", "value": 49},
                ]
            }
        ]
    }
    assert view.columns == ["email", "lead_score"] and view.sort == "-lead_score"
    event = AuditEvent.objects.get(org=stages, verb="smart_view.created")
    assert event.object_id == str(view.public_id)


def test_switching_to_a_view_shows_its_rows(stages, owner, client_as):
    view = SmartViewFactory(org=stages, owner=owner.user, filters=QUALIFIED)
    client = client_as(owner, htmx=True)
    response = client.get(LIST, {"view": str(view.public_id)}, HTTP_HX_TARGET="contact-list")
    assert shown(response) == {"Quinn"}
    html = response.content.decode()
    assert "<html" not in html and 'aria-current="page"' in html
    back = client.get(LIST, HTTP_HX_TARGET="contact-list")
    assert shown(back) == {"Quinn", "Lee"}


def test_invalid_filter_json_is_shown_at_the_builder_and_nothing_is_saved(stages, owner, client_as):
    bad = {"groups": [{"conditions": [{"field": "lead_score", "op": "gt", "value": "very"}]}]}
    response = client_as(owner).post(CREATE, {"name": "Broken", "filters": json.dumps(bad)})
    assert response.status_code == 400
    assert "Condition 1: &#x27;Lead score&#x27; needs a number." in response.content.decode()
    assert not SmartView.objects.filter(org=stages).exists()


def test_a_view_needs_a_unique_name_per_owner(stages, owner, client_as):
    SmartViewFactory(org=stages, owner=owner.user, name="Mine")
    client = client_as(owner)
    blank = client.post(CREATE, {"name": "  ", "filters": json.dumps(QUALIFIED)})
    assert blank.status_code == 400 and "Give the view a name." in blank.content.decode()
    clash = client.post(CREATE, {"name": "mine", "filters": json.dumps(QUALIFIED)})
    assert clash.status_code == 400 and "You already have a view called" in clash.content.decode()
    assert SmartView.objects.filter(org=stages).count() == 1


def test_a_filter_on_a_hidden_field_cannot_be_saved(stages, client_as):
    from tests.factories import MembershipFactory, custom_role, role

    executive = role(stages, "executive")
    hides = custom_role(
        stages, permissions=executive.permissions, field_rules={"lead_score": "hidden"}
    )
    membership = MembershipFactory(org=stages, role=hides)
    raw = {"groups": [{"conditions": [{"field": "lead_score", "op": "gt", "value": 50}]}]}
    response = client_as(membership).post(CREATE, {"name": "Peek", "filters": json.dumps(raw)})
    assert response.status_code == 400
    assert "hidden for your role" in response.content.decode()
    assert not SmartView.objects.filter(org=stages).exists()


def test_private_views_are_invisible_to_others_and_shared_ones_visible(stages, owner, client_as):
    private = SmartViewFactory(org=stages, owner=owner.user, name="Private one", filters=QUALIFIED)
    shared = SmartViewFactory(
        org=stages, owner=owner.user, name="Team one", filters=QUALIFIED, is_shared=True
    )
    colleague = member(stages, "executive")
    client = client_as(colleague)
    html = client.get(LIST).content.decode()
    assert "Team one" in html and "Private one" not in html
    # Asking for the private view by id shows the plain list instead of its filter.
    response = client.get(LIST, {"view": str(private.public_id)})
    assert response.context["active_view"] is None
    assert shown(response) == {"Quinn", "Lee"}
    assert shown(client.get(LIST, {"view": str(shared.public_id)})) == {"Quinn"}
    assert client.get(edit_url(private)).status_code == 404


def test_only_the_author_or_an_admin_may_change_a_shared_view(stages, owner, client_as):
    author = member(stages, "executive")
    shared = SmartViewFactory(org=stages, owner=author.user, name="Shared", is_shared=True)
    other = member(stages, "executive")
    forged = client_as(other).post(edit_url(shared), {"name": "Hijacked"})
    assert forged.status_code == 403
    assert client_as(other).post(delete_url(shared)).status_code == 403
    shared.refresh_from_db()
    assert shared.name == "Shared"
    admin = member(stages, "admin")
    assert client_as(admin).post(delete_url(shared)).status_code == 302
    assert not SmartView.objects.filter(pk=shared.pk).exists()
    assert AuditEvent.objects.filter(org=stages, verb="smart_view.deleted").exists()


def test_an_admin_cannot_touch_someone_elses_private_view(stages, client_as):
    private = SmartViewFactory(org=stages, owner=member(stages, "team").user, is_shared=False)
    admin = member(stages, "admin")
    assert client_as(admin).post(delete_url(private)).status_code == 404
    assert SmartView.objects.filter(pk=private.pk).exists()


def test_renaming_and_sharing_a_view(stages, owner, client_as):
    view = SmartViewFactory(org=stages, owner=owner.user, name="Old")
    client = client_as(owner)
    form = client.get(edit_url(view))
    assert form.status_code == 200 and 'value="Old"' in form.content.decode()
    response = client.post(edit_url(view), {"name": "New name", "is_shared": "1"})
    assert response.status_code == 302
    view.refresh_from_db()
    assert view.name == "New name" and view.is_shared
    event = AuditEvent.objects.get(org=stages, verb="smart_view.renamed")
    assert event.changes["name"] == ["Old", "New name"]


def test_renaming_to_an_empty_name_re_renders_with_the_error(stages, owner, client_as):
    view = SmartViewFactory(org=stages, owner=owner.user, name="Keep")
    response = client_as(owner).post(edit_url(view), {"name": ""})
    assert response.status_code == 400
    assert "Give the view a name." in response.content.decode()
    view.refresh_from_db()
    assert view.name == "Keep"


def test_a_viewer_may_keep_private_views_but_not_share_them(stages, client_as):
    viewer = member(stages, "viewer")
    client = client_as(viewer)
    forged = client.post(CREATE, {"name": "Shared?", "filters": "", "is_shared": "1"})
    assert forged.status_code == 403
    ok = client.post(CREATE, {"name": "Just mine", "filters": json.dumps(QUALIFIED)})
    assert ok.status_code == 302
    assert SmartView.objects.get(org=stages, name="Just mine").is_shared is False


def test_updating_a_views_filter_from_the_edited_list(stages, owner, client_as):
    view = SmartViewFactory(org=stages, owner=owner.user, filters=QUALIFIED)
    lead = {"groups": [{"conditions": [{"field": "lifecycle_stage", "op": "eq", "value": "lead"}]}]}
    client = client_as(owner)
    edited = client.get(LIST, {"view": str(view.public_id), "filters": json.dumps(lead)})
    assert edited.context["view_dirty"] and shown(edited) == {"Lee"}
    response = client.post(
        edit_url(view),
        {"update_filters": "1", "view": str(view.public_id), "filters": json.dumps(lead)},
    )
    assert response.status_code == 302
    view.refresh_from_db()
    assert view.filters == lead
    assert shown(client.get(LIST, {"view": str(view.public_id)})) == {"Lee"}
    assert AuditEvent.objects.filter(org=stages, verb="smart_view.updated").exists()


def test_the_view_pills_and_switch_links_have_real_hrefs(stages, owner, client_as):
    view = SmartViewFactory(org=stages, owner=owner.user, name="Pill")
    html = client_as(owner).get(LIST).content.decode()
    assert f'href="{LIST}?view={view.public_id}"' in html
    assert f'hx-get="{LIST}?view={view.public_id}"' in html
    assert 'hx-push-url="true"' in html


def test_another_orgs_view_is_not_found(stages, other_org, client_as):
    foreign_owner = member(other_org, "owner")
    foreign = SmartViewFactory(org=other_org, owner=foreign_owner.user, is_shared=True)
    me = member(stages, "admin")
    client = client_as(me)
    assert client.get(edit_url(foreign)).status_code == 404
    assert client.post(delete_url(foreign)).status_code == 404
    assert client.get(LIST, {"view": str(foreign.public_id)}).context["active_view"] is None

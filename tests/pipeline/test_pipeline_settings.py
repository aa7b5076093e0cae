"""Settings → Pipelines through its pages: the list with counts, creating from a template,
the stage editor (plain forms and HTMX), the delete pages with their "move its deals to…"
path, the won/lost reasons, who may open and post them, and escaping of what people type."""

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.permissions import BUILTIN_ROLES
from pipeline.models import Deal, DealReason, Pipeline, Stage, StageHistory
from tests.factories import (
    DealFactory,
    DealReasonFactory,
    MembershipFactory,
    PipelineFactory,
    StageFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db

LIST = reverse("pipeline:settings")
CREATE = reverse("pipeline:pipeline_create")
REASONS = reverse("pipeline:reasons")
NAUGHTY = '<script>alert("x")</script>'
NAUGHTY_STAGE = '"><img src=x onerror=alert(1)>'


def pipeline_with(org, *stage_names, name="Deals", **fields) -> Pipeline:
    pipeline = PipelineFactory(org=org, name=name, **fields)
    for index, stage_name in enumerate(stage_names):
        StageFactory(org=org, pipeline=pipeline, name=stage_name, position=index)
    return pipeline


def stage_of(pipeline, name) -> Stage:
    return Stage.objects.for_org(pipeline.org).get(pipeline=pipeline, name=name)


def names(pipeline) -> list[str]:
    return list(
        Stage.objects.for_org(pipeline.org).filter(pipeline=pipeline).values_list("name", flat=True)
    )


def url(name, obj) -> str:
    return reverse(f"pipeline:{name}", args=[obj.public_id])


def stage_post(stage, **changes) -> dict:
    prefix = f"stage-{stage.public_id}"
    data = {
        "name": stage.name,
        "color": stage.color,
        "probability": stage.probability,
        "rotting_days": stage.rotting_days or "",
        "forecast_category": stage.forecast_category,
        **changes,
    }
    return {f"{prefix}-{key}": value for key, value in data.items()}


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def client(admin, client_as):
    return client_as(admin)


# The list -------------------------------------------------------------------------------------


def test_the_list_creates_the_default_pipeline_and_shows_counts(org, client):
    page = client.get(LIST)

    assert page.status_code == 200
    pipeline = Pipeline.objects.for_org(org).get()
    assert pipeline.is_default and pipeline.name == "Sales pipeline"
    first = Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position").first()
    DealFactory(org=org, stage=first)
    DealFactory(org=org, stage=first)
    DealFactory(org=org, stage=first, status="won", closed_at=timezone.now())

    page = client.get(LIST)
    body = page.content.decode()
    assert "Sales pipeline" in body and "Default" in body
    assert page.context["pipelines"][0].deal_counts["open"] == 2
    assert page.context["pipelines"][0].deal_counts["won"] == 1
    assert "New lead" in body
    assert reverse("pipeline:pipeline_create") in body
    assert Pipeline.objects.for_org(org).count() == 1


def test_the_list_takes_the_same_number_of_queries_for_many_pipelines(org, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(LIST)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for n in range(5):
        pipeline_with(org, "A", "B", "C", name=f"More {n}")
    with CaptureQueriesContext(connection) as many:
        client.get(LIST)

    assert len(many.captured_queries) == len(few.captured_queries)


def test_settings_menu_lists_pipelines_for_admins(client):
    body = client.get(reverse("contacts:custom_fields")).content.decode()
    assert f'href="{LIST}"' in body


# Creating -------------------------------------------------------------------------------------


def test_the_create_page_offers_each_template_with_its_stages(client):
    body = client.get(CREATE).content.decode()

    for label in ("B2B sales", "Real estate", "E-commerce", "Post-sales", "Onboarding"):
        assert label in body
    assert "Viewing booked" in body and "Awaiting payment" in body
    assert 'value="b2b_sales" checked' in body


def test_creating_a_pipeline_from_a_template(org, client):
    response = client.post(CREATE, {"name": "Homes", "template": "real_estate"})

    pipeline = Pipeline.objects.for_org(org).get(name="Homes")
    assert response.status_code == 302
    assert response["Location"] == url("pipeline_detail", pipeline)
    assert names(pipeline)[0] == "New inquiry"


def test_a_taken_name_or_an_unknown_template_is_shown_on_the_form(org, client):
    pipeline_with(org, "A", name="Homes")

    taken = client.post(CREATE, {"name": "HOMES", "template": "real_estate"})
    unknown = client.post(CREATE, {"name": "Other", "template": "mars"})

    assert taken.status_code == 400
    assert "Another pipeline already has this name." in taken.content.decode()
    assert unknown.status_code == 400
    assert unknown.context["form"].errors["template"]
    assert Pipeline.objects.for_org(org).count() == 1


# One pipeline ---------------------------------------------------------------------------------


def test_the_pipeline_page_shows_each_stage_with_its_deal_counts(org, client):
    pipeline = pipeline_with(org, "Lead", "Demo")
    DealFactory(org=org, stage=stage_of(pipeline, "Demo"))
    DealFactory(org=org, stage=stage_of(pipeline, "Demo"), status="lost", closed_at=timezone.now())

    page = client.get(url("pipeline_detail", pipeline))

    assert page.status_code == 200
    rows = page.context["rows"]
    assert [row["stage"].name for row in rows] == ["Lead", "Demo"]
    assert (rows[1]["deals"]["open"], rows[1]["deals"]["closed"]) == (1, 1)
    body = page.content.decode()
    assert url("stage_reorder", pipeline) in body
    assert "data-stage-sortable" in body and "vendor/sortablejs/Sortable.min.js" in body


def test_renaming_and_choosing_the_default(org, client):
    client.get(LIST)
    ensured = Pipeline.objects.for_org(org).get()
    homes = pipeline_with(org, "A", name="Homes")

    taken = client.post(url("pipeline_rename", homes), {"name": ensured.name.upper()})
    renamed = client.post(url("pipeline_rename", homes), {"name": "Houses"})
    default = client.post(url("pipeline_set_default", homes), {"back": "list"})

    assert taken.status_code == 400 and "Another pipeline" in taken.content.decode()
    assert renamed.status_code == 302
    assert default["Location"] == LIST
    homes.refresh_from_db()
    assert homes.name == "Houses" and homes.is_default
    assert not Pipeline.objects.for_org(org).get(pk=ensured.pk).is_default


def test_adding_a_stage_with_a_plain_form(org, client):
    pipeline = pipeline_with(org, "Lead")

    response = client.post(
        url("stage_add", pipeline),
        {
            "new-name": "Proposal",
            "new-color": "#123abc",
            "new-probability": "55",
            "new-rotting_days": "",
            "new-forecast_category": "best_case",
        },
    )

    assert response.status_code == 302
    stage = stage_of(pipeline, "Proposal")
    assert (stage.color, stage.probability, stage.rotting_days) == ("#123abc", 55, None)
    assert response["Location"].endswith(f"#stage-{stage.public_id}")


def test_a_bad_new_stage_is_shown_with_its_errors(org, client):
    pipeline = pipeline_with(org, "Lead")

    response = client.post(
        url("stage_add", pipeline),
        {
            "new-name": "lead",
            "new-color": "#123abc",
            "new-probability": "150",
            "new-forecast_category": "closed",
        },
    )

    assert response.status_code == 400
    errors = response.context["add_form"].errors
    assert set(errors) == {"probability", "forecast_category"}
    duplicate = client.post(
        url("stage_add", pipeline),
        {
            "new-name": "LEAD",
            "new-color": "#123abc",
            "new-probability": "5",
            "new-forecast_category": "pipeline",
        },
    )
    assert "Another stage of this pipeline already has this name." in duplicate.content.decode()
    assert names(pipeline) == ["Lead"]


def test_saving_a_stage_with_a_plain_form_and_with_htmx(org, client, admin, client_as):
    pipeline = pipeline_with(org, "Lead", "Demo")
    stage = stage_of(pipeline, "Lead")

    plain = client.post(url("stage_update", stage), stage_post(stage, probability=30))
    stage.refresh_from_db()
    htmx = client_as(admin, htmx=True).post(
        url("stage_update", stage), stage_post(stage, name="Lead in", rotting_days=4)
    )

    assert plain.status_code == 302
    assert htmx.status_code == 200
    body = htmx.content.decode()
    assert body.lstrip().startswith("<li") and "<html" not in body
    assert 'value="Lead in"' in body
    assert "toast" in htmx["HX-Trigger"]
    stage.refresh_from_db()
    assert (stage.name, stage.probability, stage.rotting_days) == ("Lead in", 30, 4)


def test_a_bad_stage_save_keeps_the_input_and_says_why(org, client, admin, client_as):
    pipeline = pipeline_with(org, "Lead", "Demo")
    stage = stage_of(pipeline, "Lead")

    plain = client.post(url("stage_update", stage), stage_post(stage, color="blue"))
    htmx = client_as(admin, htmx=True).post(
        url("stage_update", stage), stage_post(stage, name="Demo")
    )

    assert plain.status_code == 400
    assert "Use a colour like #3b82f6" in plain.content.decode()
    assert htmx.status_code == 200
    assert "Another stage of this pipeline already has this name." in htmx.content.decode()
    assert 'value="Demo"' in htmx.content.decode()
    stage.refresh_from_db()
    assert (stage.name, stage.color) == ("Lead", "#64748b")


def test_the_arrows_move_a_stage_with_and_without_htmx(org, client, admin, client_as):
    pipeline = pipeline_with(org, "A", "B", "C")

    plain = client.post(url("stage_move", stage_of(pipeline, "C")), {"direction": "up"})
    htmx = client_as(admin, htmx=True).post(
        url("stage_move", stage_of(pipeline, "C")), {"direction": "up"}
    )

    assert plain.status_code == 302
    assert htmx.status_code == 200
    assert htmx.content.decode().lstrip().startswith('<section class="card" id="stages"')
    assert names(pipeline) == ["C", "A", "B"]


def test_dragging_posts_the_new_order(org, admin, client_as):
    pipeline = pipeline_with(org, "A", "B", "C")
    order = [str(stage_of(pipeline, n).public_id) for n in ("B", "C", "A")]

    response = client_as(admin, htmx=True).post(url("stage_reorder", pipeline), {"order": order})
    stale = client_as(admin, htmx=True).post(url("stage_reorder", pipeline), {"order": order[:2]})

    assert response.status_code == 200
    assert names(pipeline) == ["B", "C", "A"]
    assert stale.status_code == 200
    assert "Reload the page" in stale["HX-Trigger"]


# Deleting -------------------------------------------------------------------------------------


def test_deleting_an_empty_stage(org, client):
    pipeline = pipeline_with(org, "A", "B")
    stage = stage_of(pipeline, "A")

    page = client.get(url("stage_delete", stage))
    response = client.post(url("stage_delete", stage))

    assert "No deal is in this stage" in page.content.decode()
    assert "move_to_stage" not in page.content.decode()
    assert response.status_code == 302
    assert names(pipeline) == ["B"]


def test_a_stage_in_use_asks_where_its_deals_go(org, client):
    pipeline = pipeline_with(org, "A", "B", "C")
    stage = stage_of(pipeline, "A")
    deals = [DealFactory(org=org, stage=stage) for _ in range(3)]

    page = client.get(url("stage_delete", stage))
    refused = client.post(url("stage_delete", stage))
    moved = client.post(
        url("stage_delete", stage), {"move_to_stage": str(stage_of(pipeline, "C").public_id)}
    )

    body = page.content.decode()
    assert "3 deals are in this stage" in body
    choices = [str(value) for value, _ in page.context["form"].fields["move_to_stage"].choices]
    assert str(stage_of(pipeline, "B").public_id) in choices
    assert str(stage.public_id) not in choices
    assert refused.status_code == 400
    assert refused.context["form"].errors["move_to_stage"]
    assert moved.status_code == 302
    assert names(pipeline) == ["B", "C"]
    target = stage_of(pipeline, "C")
    assert set(Deal.objects.for_org(org).values_list("stage_id", flat=True)) == {target.pk}
    assert StageHistory.objects.for_org(org).filter(deal__in=deals).count() == 3


def test_a_forged_target_of_another_pipeline_or_org_is_refused(org, other_org, client):
    pipeline = pipeline_with(org, "A", "B")
    elsewhere = pipeline_with(org, "X", name="Elsewhere")
    theirs = pipeline_with(other_org, "T", name="Theirs")
    stage = stage_of(pipeline, "A")
    DealFactory(org=org, stage=stage)

    for target in (stage_of(elsewhere, "X"), stage_of(theirs, "T"), stage):
        response = client.post(url("stage_delete", stage), {"move_to_stage": str(target.public_id)})
        assert response.status_code == 400
    garbage = client.post(url("stage_delete", stage), {"move_to_stage": "not-a-uuid"})

    assert garbage.status_code == 400
    assert Stage.objects.for_org(org).filter(pk=stage.pk).exists()


def test_the_last_stage_page_explains_instead_of_offering_delete(org, client):
    pipeline = pipeline_with(org, "Only")
    stage = stage_of(pipeline, "Only")

    page = client.get(url("stage_delete", stage))
    response = client.post(url("stage_delete", stage))

    assert "a pipeline needs at least one" in page.content.decode()
    assert response.status_code == 400
    assert names(pipeline) == ["Only"]


def test_a_pipeline_in_use_asks_where_its_deals_go(org, client):
    sales = pipeline_with(org, "A", name="Sales", is_default=True)
    homes = pipeline_with(org, "First", "Second", name="Homes")
    deal = DealFactory(org=org, stage=stage_of(sales, "A"))

    page = client.get(url("pipeline_delete", sales))
    refused = client.post(url("pipeline_delete", sales))
    moved = client.post(
        url("pipeline_delete", sales),
        {"move_to_stage": str(stage_of(homes, "Second").public_id)},
    )

    assert "1 deal uses this pipeline" in page.content.decode()
    assert "Homes" in page.content.decode()  # the stages are grouped by pipeline
    assert refused.status_code == 400
    assert moved.status_code == 302 and moved["Location"] == LIST
    assert not Pipeline.objects.for_org(org).filter(pk=sales.pk).exists()
    deal.refresh_from_db()
    assert deal.stage_id == stage_of(homes, "Second").pk
    assert Pipeline.objects.for_org(org).get().is_default


def test_the_only_pipeline_cannot_be_deleted_from_its_page(org, client):
    only = pipeline_with(org, "A", name="Only", is_default=True)

    page = client.get(url("pipeline_delete", only))
    response = client.post(url("pipeline_delete", only))

    assert "only pipeline" in page.content.decode()
    assert response.status_code == 400
    assert Pipeline.objects.for_org(org).filter(pk=only.pk).exists()


# Reasons --------------------------------------------------------------------------------------


def test_reasons_are_listed_added_renamed_and_turned_off(org, client):
    price = DealReasonFactory(org=org, kind="lost", name="Price")

    page = client.get(REASONS)
    added = client.post(REASONS, {"kind": "won", "won-name": "Great demo"})
    duplicate = client.post(REASONS, {"kind": "lost", "lost-name": "price"})
    bad_kind = client.post(REASONS, {"kind": "maybe", "maybe-name": "Eh"})
    renamed = client.post(url("reason_update", price), {"name": "Too expensive"})
    off = client.post(url("reason_deactivate", price))

    assert page.status_code == 200 and "Price" in page.content.decode()
    assert added.status_code == 302
    assert duplicate.status_code == 400
    assert "This list already has a reason with this name." in duplicate.content.decode()
    assert bad_kind.status_code == 302
    assert renamed.status_code == 302 and off.status_code == 302
    price.refresh_from_db()
    assert (price.name, price.is_active) == ("Too expensive", False)
    assert DealReason.objects.for_org(org).filter(kind="won", name="Great demo").exists()
    assert client.post(url("reason_reactivate", price)).status_code == 302
    price.refresh_from_db()
    assert price.is_active


# Who may see and change them ------------------------------------------------------------------


def every_view(org):
    """(method, url) for every page and action of Settings → Pipelines."""
    pipeline = pipeline_with(org, "A", "B", name="Probe")
    stage = stage_of(pipeline, "A")
    reason = DealReasonFactory(org=org, kind="lost", name="Probe reason")
    return [
        ("get", LIST),
        ("get", CREATE),
        ("post", CREATE),
        ("get", url("pipeline_detail", pipeline)),
        ("post", url("pipeline_rename", pipeline)),
        ("post", url("pipeline_set_default", pipeline)),
        ("get", url("pipeline_delete", pipeline)),
        ("post", url("pipeline_delete", pipeline)),
        ("post", url("stage_add", pipeline)),
        ("post", url("stage_reorder", pipeline)),
        ("post", url("stage_update", stage)),
        ("post", url("stage_move", stage)),
        ("get", url("stage_delete", stage)),
        ("post", url("stage_delete", stage)),
        ("get", REASONS),
        ("post", REASONS),
        ("get", url("reason_update", reason)),
        ("post", url("reason_update", reason)),
        ("post", url("reason_deactivate", reason)),
        ("post", url("reason_reactivate", reason)),
    ]


def test_every_view_is_named_in_the_walk_below():
    from pipeline.urls import settings as routes

    assert len(routes.urlpatterns) == 15  # every_view() covers each of them


@pytest.mark.parametrize("role_key", ["team", "executive", "viewer", "board", "support"])
def test_members_without_settings_get_403_everywhere(org, client_as, role_key):
    targets = every_view(org)
    client = client_as(member(org, role_key))

    for method, target in targets:
        response = getattr(client, method)(target, {"direction": "down", "kind": "won"})
        assert response.status_code == 403, (method, target)

    assert names(Pipeline.objects.for_org(org).get(name="Probe")) == ["A", "B"]
    assert Pipeline.objects.for_org(org).count() == 1


def test_a_member_who_may_only_view_settings_reads_but_cannot_change(org, client_as):
    settings_view = {"access": True, "view": True, "scope": "all"}
    reader = MembershipFactory(
        org=org, role=custom_role(org, permissions={"settings": settings_view})
    )
    targets = every_view(org)
    probe = Pipeline.objects.for_org(org).get(name="Probe")
    readable = {("get", LIST), ("get", REASONS), ("get", url("pipeline_detail", probe))}
    client = client_as(reader)

    for method, target in targets:
        response = getattr(client, method)(target, {"direction": "down", "kind": "won"})
        expected = 200 if (method, target) in readable else 403
        assert response.status_code == expected, (method, target)

    body = client.get(url("pipeline_detail", probe)).content.decode()
    assert "stage-order-form" not in body and "Add a stage" not in body
    assert "New pipeline" not in client.get(LIST).content.decode()


def test_another_orgs_owner_gets_404_for_every_object(org, other_org, client_as):
    targets = [(m, t) for m, t in every_view(org) if t not in (LIST, CREATE, REASONS)]
    client = client_as(member(other_org, "owner"))

    for method, target in targets:
        response = getattr(client, method)(target, {"direction": "down"})
        assert response.status_code == 404, (method, target)


def test_owner_and_admin_roles_are_the_ones_with_settings_edit():
    editors = {key for key, _, _, perms in BUILTIN_ROLES if perms["settings"]["edit"]}
    assert editors == {"owner", "admin"}


# Escaping -------------------------------------------------------------------------------------


def test_names_people_type_are_escaped_everywhere(org, client):
    client.post(CREATE, {"name": NAUGHTY, "template": "scratch"})
    pipeline = Pipeline.objects.for_org(org).get(name=NAUGHTY)
    stage = Stage.objects.for_org(org).get(pipeline=pipeline)
    client.post(url("stage_update", stage), stage_post(stage, name=NAUGHTY_STAGE))
    client.post(REASONS, {"kind": "lost", "lost-name": NAUGHTY})
    reason = DealReason.objects.for_org(org).get(name=NAUGHTY)
    DealFactory(org=org, stage=stage)
    pipeline_with(org, "Other stage", name="Other")
    stage.refresh_from_db()

    pages = [
        LIST,
        url("pipeline_detail", pipeline),
        url("pipeline_delete", pipeline),
        url("stage_delete", stage),
        REASONS,
        url("reason_update", reason),
    ]
    for page in pages:
        body = client.get(page).content.decode()
        for raw in (NAUGHTY, NAUGHTY_STAGE):
            assert raw not in body, page
        assert "&lt;script&gt;" in body or "&lt;img" in body, page

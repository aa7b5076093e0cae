"""Settings → Pipelines, through the services: the niche templates, the default pipeline,
pipelines, stages and their order, deleting with the "move its deals to…" path (history,
positions, one event), won/lost reasons, who may change them, and contacts created by an
import landing in the "Stage" lifecycle stage."""

import csv
import datetime as dt
import io
import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.importing import services as import_services
from contacts.models import Contact
from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Deal, DealReason, ForecastCategory, Pipeline, Stage, StageHistory
from pipeline.services.pipelines import (
    ensure_default_pipeline,
    pipeline_create,
    pipeline_delete,
    pipeline_rename,
    pipeline_set_default,
)
from pipeline.services.reasons import (
    reason_create,
    reason_deactivate,
    reason_reactivate,
    reason_update,
)
from pipeline.services.stages import (
    stage_add,
    stage_delete,
    stage_move,
    stage_reorder,
    stage_update,
)
from pipeline.templates_catalog import (
    DEFAULT_LOST_REASONS,
    DEFAULT_WON_REASONS,
    TEMPLATES,
    TEMPLATES_BY_KEY,
)
from tests.factories import (
    DealFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    member,
)

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


def names(pipeline) -> list[str]:
    return list(
        Stage.objects.for_org(pipeline.org).filter(pipeline=pipeline).values_list("name", flat=True)
    )


def events(org, event_type) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.for_org(org).filter(event_type=event_type))


def pipeline_with(org, *stage_names, name="Deals") -> Pipeline:
    pipeline = PipelineFactory(org=org, name=name)
    for index, stage_name in enumerate(stage_names):
        StageFactory(org=org, pipeline=pipeline, name=stage_name, position=index)
    return pipeline


def stage_of(pipeline, name) -> Stage:
    return Stage.objects.for_org(pipeline.org).get(pipeline=pipeline, name=name)


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def as_admin(admin):
    return {"actor": Actor.for_user(admin.user), "policy": Policy(admin)}


# The templates --------------------------------------------------------------------------------


def test_the_five_niche_templates_are_offered():
    keys = {template.key for template in TEMPLATES}
    assert {"b2b_sales", "real_estate", "ecommerce", "post_sales", "onboarding"} <= keys


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_template_is_a_valid_list_of_open_stages(template):
    assert template.stages
    lowered = [stage.name.casefold() for stage in template.stages]
    assert len(set(lowered)) == len(lowered)
    assert not {"won", "lost"} & set(lowered)  # won and lost are a deal's status
    probabilities = [stage.probability for stage in template.stages]
    assert probabilities == sorted(probabilities)
    for stage in template.stages:
        assert 0 <= stage.probability < 100
        assert len(stage.color) == 7 and stage.color.startswith("#")
        int(stage.color[1:], 16)
        assert stage.rotting_days is None or stage.rotting_days > 0
        assert stage.forecast_category in ForecastCategory.values
        assert stage.forecast_category != ForecastCategory.CLOSED
        assert len(stage.name) <= Stage._meta.get_field("name").max_length


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_a_pipeline_created_from_a_template_gets_its_stages_in_order(org, as_admin, template):
    pipeline = pipeline_create(
        org=org, name=f"From {template.name}", template_key=template.key, **as_admin
    )

    stages = list(Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position"))
    assert [s.name for s in stages] == [s.name for s in template.stages]
    assert [s.position for s in stages] == list(range(len(stages)))
    first = stages[0]
    expected = template.stages[0]
    assert (first.color, first.probability, first.rotting_days, first.forecast_category) == (
        expected.color,
        expected.probability,
        expected.rotting_days,
        expected.forecast_category,
    )
    assert pipeline.template == template.key


# The default pipeline -------------------------------------------------------------------------


def test_an_org_without_pipelines_gets_the_sales_pipeline_and_reasons_once(org):
    first = ensure_default_pipeline(org)
    second = ensure_default_pipeline(org)

    assert first.pk == second.pk
    assert first.is_default and first.name == "Sales pipeline"
    assert names(first) == [s.name for s in TEMPLATES_BY_KEY["b2b_sales"].stages]
    assert Pipeline.objects.for_org(org).count() == 1
    won = DealReason.objects.for_org(org).filter(kind="won").values_list("name", flat=True)
    lost = DealReason.objects.for_org(org).filter(kind="lost").values_list("name", flat=True)
    assert list(won) == list(DEFAULT_WON_REASONS)
    assert list(lost) == list(DEFAULT_LOST_REASONS)
    assert len(events(org, "pipeline.created")) == 1
    assert AuditEvent.objects.for_org(org).filter(verb="pipeline.created").count() == 1


def test_the_default_pipeline_is_per_organization(org, other_org):
    ours = ensure_default_pipeline(org)
    theirs = ensure_default_pipeline(other_org)

    assert ours.pk != theirs.pk
    assert Pipeline.objects.for_org(other_org).get().pk == theirs.pk


def test_an_org_with_pipelines_but_no_default_gets_its_first_as_default(org):
    first = pipeline_with(org, "One", name="Alpha")
    pipeline_with(org, "One", name="Beta")

    found = ensure_default_pipeline(org)

    assert found.pk == first.pk
    assert Pipeline.objects.for_org(org).get(pk=first.pk).is_default
    assert Pipeline.objects.for_org(org).count() == 2
    assert not DealReason.objects.for_org(org).exists()


def test_existing_reasons_are_not_doubled_by_the_default_pipeline(org):
    DealReason.objects.create(org=org, kind="lost", name="Our own reason")

    ensure_default_pipeline(org)

    assert list(DealReason.objects.for_org(org).values_list("name", flat=True)) == [
        "Our own reason"
    ]


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_for_the_default_pipeline_create_one():
    org = OrganizationFactory()
    barrier = threading.Barrier(2)
    found, errors = [], []

    def visit():
        try:
            barrier.wait(timeout=5)
            found.append(ensure_default_pipeline(org).pk)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=visit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert len(set(found)) == 1
    assert Pipeline.objects.for_org(org).count() == 1
    assert DealReason.objects.for_org(org).count() == len(DEFAULT_WON_REASONS) + len(
        DEFAULT_LOST_REASONS
    )


# Pipelines ------------------------------------------------------------------------------------


def test_the_first_pipeline_is_the_default_and_later_ones_are_not(org, as_admin):
    first = pipeline_create(org=org, name="Sales", template_key="b2b_sales", **as_admin)
    second = pipeline_create(org=org, name="Homes", template_key="real_estate", **as_admin)

    assert first.is_default and not second.is_default
    assert second.position > first.position
    event = events(org, "pipeline.created")[-1]
    assert event.payload["name"] == "Homes" and event.payload["template"] == "real_estate"


def test_pipeline_names_are_unique_whatever_their_case(org, as_admin):
    pipeline_create(org=org, name="Sales", template_key="b2b_sales", **as_admin)

    with pytest.raises(ValidationError) as caught:
        pipeline_create(org=org, name="  sALES ", template_key="onboarding", **as_admin)

    assert caught.value.message_dict == {"name": ["Another pipeline already has this name."]}
    assert Pipeline.objects.for_org(org).count() == 1


def test_another_org_may_use_the_same_pipeline_name(org, other_org, as_admin):
    pipeline_create(org=org, name="Sales", template_key="b2b_sales", **as_admin)
    pipeline_create(org=other_org, name="Sales", template_key="b2b_sales", actor=SYSTEM)

    assert Pipeline.objects.for_org(other_org).filter(name="Sales").exists()


@pytest.mark.parametrize(
    ("name", "template", "field"),
    [
        ("", "b2b_sales", "name"),
        ("   ", "b2b_sales", "name"),
        ("x" * 121, "b2b_sales", "name"),
        ("Nul\x00name", "b2b_sales", "name"),
        ("Fine", "no_such_template", "template"),
    ],
)
def test_bad_pipeline_input_is_a_field_error(org, as_admin, name, template, field):
    with pytest.raises(ValidationError) as caught:
        pipeline_create(org=org, name=name, template_key=template, **as_admin)

    assert field in caught.value.message_dict
    assert not Pipeline.objects.for_org(org).exists()


def test_renaming_a_pipeline_checks_the_name_and_audits(org, as_admin):
    sales = pipeline_create(org=org, name="Sales", template_key="b2b_sales", **as_admin)
    homes = pipeline_create(org=org, name="Homes", template_key="real_estate", **as_admin)

    with pytest.raises(ValidationError) as caught:
        pipeline_rename(pipeline=homes, name="SALES", **as_admin)
    assert "name" in caught.value.message_dict

    pipeline_rename(pipeline=homes, name="Houses", **as_admin)
    pipeline_rename(pipeline=sales, name="sales", **as_admin)  # its own name, another case

    assert Pipeline.objects.for_org(org).get(pk=homes.pk).name == "Houses"
    assert Pipeline.objects.for_org(org).get(pk=sales.pk).name == "sales"
    audit_row = AuditEvent.objects.for_org(org).filter(verb="pipeline.renamed").first()
    assert audit_row.changes["name"] in (["Homes", "Houses"], ["Sales", "sales"])


def test_one_pipeline_is_the_default_at_a_time(org, as_admin):
    sales = pipeline_create(org=org, name="Sales", template_key="b2b_sales", **as_admin)
    homes = pipeline_create(org=org, name="Homes", template_key="real_estate", **as_admin)

    pipeline_set_default(pipeline=homes, **as_admin)

    defaults = list(Pipeline.objects.for_org(org).filter(is_default=True))
    assert [p.pk for p in defaults] == [homes.pk]
    assert not Pipeline.objects.for_org(org).get(pk=sales.pk).is_default
    assert events(org, "pipeline.default_changed")[0].payload["previous"] == str(sales.public_id)


# Stages ---------------------------------------------------------------------------------------


def test_a_new_stage_goes_last_with_its_settings(org, as_admin):
    pipeline = pipeline_with(org, "Lead", "Demo")

    stage = stage_add(
        pipeline=pipeline,
        data={
            "name": "  Contract   sent ",
            "color": "#A1B2C3",
            "probability": "85",
            "rotting_days": 5,
            "forecast_category": "commit",
        },
        **as_admin,
    )

    assert names(pipeline) == ["Lead", "Demo", "Contract sent"]
    assert (stage.color, stage.probability, stage.rotting_days, stage.forecast_category) == (
        "#a1b2c3",
        85,
        5,
        "commit",
    )
    assert events(org, "pipeline.stage_added")[0].payload["name"] == "Contract sent"


def test_a_new_stage_takes_defaults_for_what_is_not_given(org, as_admin):
    pipeline = pipeline_with(org, "Lead")

    stage = stage_add(pipeline=pipeline, data={"name": "Demo"}, **as_admin)

    assert (stage.color, stage.probability, stage.rotting_days, stage.forecast_category) == (
        "#64748b",
        10,
        None,
        "pipeline",
    )


def test_every_bad_stage_field_is_reported_at_once(org, as_admin):
    pipeline = pipeline_with(org, "Lead")

    with pytest.raises(ValidationError) as caught:
        stage_add(
            pipeline=pipeline,
            data={
                "name": "",
                "color": "red",
                "probability": 101,
                "rotting_days": 0,
                "forecast_category": "closed",
            },
            **as_admin,
        )

    assert set(caught.value.message_dict) == {
        "name",
        "color",
        "probability",
        "rotting_days",
        "forecast_category",
    }
    assert names(pipeline) == ["Lead"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("color", "#12345"),
        ("color", "#1234567"),
        ("color", "12345g"),
        ("probability", -1),
        ("probability", "ten"),
        ("probability", True),
        ("rotting_days", 3651),
        ("rotting_days", "soon"),
        ("forecast_category", "maybe"),
    ],
)
def test_stage_values_are_checked(org, as_admin, field, value):
    pipeline = pipeline_with(org, "Lead")
    stage = stage_of(pipeline, "Lead")

    with pytest.raises(ValidationError) as caught:
        stage_update(stage=stage, data={field: value}, **as_admin)

    assert list(caught.value.message_dict) == [field]


def test_stage_names_are_unique_in_a_pipeline_whatever_their_case(org, as_admin):
    pipeline = pipeline_with(org, "Lead", "Demo")
    other = pipeline_with(org, "Lead", name="Other")

    with pytest.raises(ValidationError) as caught:
        stage_add(pipeline=pipeline, data={"name": "LEAD"}, **as_admin)
    assert caught.value.message_dict == {
        "name": ["Another stage of this pipeline already has this name."]
    }
    with pytest.raises(ValidationError):
        stage_update(stage=stage_of(pipeline, "Demo"), data={"name": "lead"}, **as_admin)

    stage_add(pipeline=other, data={"name": "Demo"}, **as_admin)  # another pipeline: fine
    stage_update(stage=stage_of(pipeline, "Lead"), data={"name": "LEAD"}, **as_admin)
    assert names(pipeline) == ["LEAD", "Demo"]


def test_updating_a_stage_audits_what_changed_and_nothing_when_nothing_did(org, as_admin):
    pipeline = pipeline_with(org, "Lead")
    stage = stage_of(pipeline, "Lead")

    stage_update(
        stage=stage,
        data={"probability": 35, "rotting_days": "", "name": "Lead"},
        **as_admin,
    )
    stage_update(stage=stage, data={"probability": 35}, **as_admin)

    rows = AuditEvent.objects.for_org(org).filter(verb="pipeline.stage_updated")
    assert [row.changes for row in rows] == [{"probability": [20, 35]}]
    assert events(org, "pipeline.stage_updated")[0].payload["changes"] == {"probability": [20, 35]}


def test_deals_that_follow_their_stage_follow_its_new_probability(org, as_admin):
    pipeline = pipeline_with(org, "Lead")
    stage = stage_of(pipeline, "Lead")
    following = DealFactory(org=org, stage=stage)
    fixed = DealFactory(org=org, stage=stage, probability=70)

    stage_update(stage=stage, data={"probability": 45}, **as_admin)

    assert Deal.objects.for_org(org).get(pk=following.pk).effective_probability == 45
    assert Deal.objects.for_org(org).get(pk=fixed.pk).effective_probability == 70


def test_reordering_puts_the_stages_in_the_given_order(org, as_admin):
    pipeline = pipeline_with(org, "A", "B", "C")
    ids = {name: stage_of(pipeline, name).public_id for name in "ABC"}

    stage_reorder(
        pipeline=pipeline, ordered_public_ids=[str(ids["C"]), ids["A"], ids["B"]], **as_admin
    )

    stages = Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position")
    assert [(s.name, s.position) for s in stages] == [("C", 0), ("A", 1), ("B", 2)]
    audit_row = AuditEvent.objects.for_org(org).get(verb="pipeline.stages_reordered")
    assert audit_row.changes == {"stages": [["A", "B", "C"], ["C", "A", "B"]]}


@pytest.mark.parametrize(
    "order",
    [
        lambda ids: [ids["A"], ids["B"]],  # one missing
        lambda ids: [ids["A"], ids["B"], ids["C"], ids["C"]],  # one twice
        lambda ids: [ids["A"], ids["B"], "not-a-uuid"],
        lambda ids: [ids["A"], ids["B"], ids["X"]],  # another pipeline's
    ],
)
def test_an_order_that_does_not_name_each_stage_once_is_refused(org, as_admin, order):
    pipeline = pipeline_with(org, "A", "B", "C")
    elsewhere = pipeline_with(org, "X", name="Elsewhere")
    ids = {name: stage_of(pipeline, name).public_id for name in "ABC"}
    ids["X"] = stage_of(elsewhere, "X").public_id

    with pytest.raises(ValidationError):
        stage_reorder(pipeline=pipeline, ordered_public_ids=order(ids), **as_admin)

    assert names(pipeline) == ["A", "B", "C"]


def test_moving_a_stage_up_and_down_stops_at_the_ends(org, as_admin):
    pipeline = pipeline_with(org, "A", "B", "C")

    stage_move(stage=stage_of(pipeline, "C"), direction="up", **as_admin)
    assert names(pipeline) == ["A", "C", "B"]
    stage_move(stage=stage_of(pipeline, "A"), direction="down", **as_admin)
    assert names(pipeline) == ["C", "A", "B"]
    stage_move(stage=stage_of(pipeline, "C"), direction="up", **as_admin)
    stage_move(stage=stage_of(pipeline, "B"), direction="down", **as_admin)
    assert names(pipeline) == ["C", "A", "B"]
    assert AuditEvent.objects.for_org(org).filter(verb="pipeline.stages_reordered").count() == 2
    with pytest.raises(ValidationError):
        stage_move(stage=stage_of(pipeline, "A"), direction="sideways", **as_admin)


# Deleting a stage -----------------------------------------------------------------------------


def test_a_stage_without_deals_is_deleted_and_the_rest_renumbered(org, as_admin):
    pipeline = pipeline_with(org, "A", "B", "C")

    assert stage_delete(stage=stage_of(pipeline, "A"), **as_admin) == 0

    stages = Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position")
    assert [(s.name, s.position) for s in stages] == [("B", 0), ("C", 1)]
    payload = events(org, "pipeline.stage_deleted")[0].payload
    assert payload["moved_deals"] == 0 and payload["name"] == "A"


def test_deleting_a_stage_with_deals_is_refused_without_a_target(org, as_admin):
    pipeline = pipeline_with(org, "A", "B")
    stage = stage_of(pipeline, "A")
    DealFactory(org=org, stage=stage)
    DealFactory(org=org, stage=stage, status="won", closed_at=timezone.now())

    with pytest.raises(ValidationError) as caught:
        stage_delete(stage=stage, **as_admin)

    assert caught.value.code == "in_use"
    assert "2 deals are in “A”" in caught.value.messages[0]
    assert Stage.objects.for_org(org).filter(pk=stage.pk).exists()
    assert not events(org, "pipeline.stage_deleted")


def test_an_archived_or_closed_deal_also_keeps_its_stage_from_deletion(org, as_admin):
    pipeline = pipeline_with(org, "A", "B")
    stage = stage_of(pipeline, "A")
    DealFactory(org=org, stage=stage, is_archived=True)

    with pytest.raises(ValidationError) as caught:
        stage_delete(stage=stage, **as_admin)

    assert "1 deal is in" in caught.value.messages[0]


def test_the_last_stage_of_a_pipeline_is_never_deleted(org, as_admin):
    pipeline = pipeline_with(org, "Only")

    with pytest.raises(ValidationError) as caught:
        stage_delete(stage=stage_of(pipeline, "Only"), **as_admin)

    assert caught.value.code == "last_stage"
    assert names(pipeline) == ["Only"]


def test_the_target_stage_must_be_another_stage_of_the_same_pipeline(org, as_admin):
    pipeline = pipeline_with(org, "A", "B")
    elsewhere = pipeline_with(org, "X", name="Elsewhere")
    stage = stage_of(pipeline, "A")
    DealFactory(org=org, stage=stage)

    for target in (stage, stage_of(elsewhere, "X")):
        with pytest.raises(ValidationError) as caught:
            stage_delete(stage=stage, move_to_stage=target, **as_admin)
        assert "move_to_stage" in caught.value.message_dict

    assert Deal.objects.for_org(org).get().stage_id == stage.pk


def test_deleting_a_stage_moves_its_deals_and_records_each_move(org, admin, as_admin):
    pipeline = pipeline_with(org, "A", "B")
    source, target = stage_of(pipeline, "A"), stage_of(pipeline, "B")
    entered = timezone.now() - dt.timedelta(days=3)
    waiting = DealFactory(org=org, stage=target, position=10.0)
    open_deal = DealFactory(org=org, stage=source, position=5.0, stage_entered_at=entered)
    later = DealFactory(org=org, stage=source, position=7.0, stage_entered_at=entered)
    won = DealFactory(org=org, stage=source, position=1.0, status="won", closed_at=timezone.now())

    moved = stage_delete(stage=source, move_to_stage=target, **as_admin)

    assert moved == 3
    assert not Stage.objects.for_org(org).filter(pk=source.pk).exists()
    deals = {d.pk: d for d in Deal.objects.for_org(org)}
    assert {d.stage_id for d in deals.values()} == {target.pk}
    # Behind the card already there, in the order they had.
    column = sorted(deals.values(), key=lambda d: d.position)
    assert [d.pk for d in column] == [waiting.pk, won.pk, open_deal.pk, later.pk]
    assert deals[open_deal.pk].stage_entered_at > entered
    assert deals[won.pk].status == "won"
    history = {h.deal_id: h for h in StageHistory.objects.for_org(org)}
    assert set(history) == {open_deal.pk, later.pk, won.pk}
    row = history[open_deal.pk]
    assert (row.from_stage_id, row.to_stage_id) == (None, target.pk)  # the stage is gone
    assert (row.from_status, row.to_status) == ("open", "open")
    assert 3 * 86400 - 5 <= row.seconds_in_from_stage <= 3 * 86400 + 60
    assert row.actor_id == admin.user_id and row.actor_label == admin.user.email
    assert history[won.pk].seconds_in_from_stage is None
    assert history[won.pk].to_status == "won"
    payload = events(org, "pipeline.stage_deleted")[0].payload
    assert payload["moved_deals"] == 3 and payload["moved_to_stage"] == str(target.public_id)
    audit_row = AuditEvent.objects.for_org(org).get(verb="pipeline.stage_deleted")
    assert audit_row.changes["moved_deals"] == [None, 3]


def test_thousands_of_deals_move_in_a_few_queries(org, as_admin):
    pipeline = pipeline_with(org, "A", "B")
    source, target = stage_of(pipeline, "A"), stage_of(pipeline, "B")
    now = timezone.now()
    Deal.objects.for_org(org).bulk_create(
        [
            Deal(
                org=org,
                title=f"Deal {n}",
                currency="USD",
                pipeline=pipeline,
                stage=source,
                position=float(n),
                stage_entered_at=now,
            )
            for n in range(2500)
        ]
    )

    with CaptureQueriesContext(connection) as captured:
        moved = stage_delete(stage=source, move_to_stage=target, **as_admin)

    assert moved == 2500
    assert StageHistory.objects.for_org(org).count() == 2500
    assert Deal.objects.for_org(org).filter(stage=target).count() == 2500
    assert len(captured.captured_queries) < 40


# Deleting a pipeline --------------------------------------------------------------------------


def test_a_pipeline_in_use_is_not_deleted_without_a_target(org, as_admin):
    sales = pipeline_with(org, "A", name="Sales")
    pipeline_with(org, "X", name="Other")
    DealFactory(org=org, stage=stage_of(sales, "A"), status="lost", closed_at=timezone.now())

    with pytest.raises(ValidationError) as caught:
        pipeline_delete(pipeline=sales, **as_admin)

    assert caught.value.code == "in_use"
    assert "1 deal still uses “Sales”" in caught.value.messages[0]
    assert Pipeline.objects.for_org(org).filter(pk=sales.pk).exists()


def test_the_only_pipeline_is_never_deleted(org, as_admin):
    only = pipeline_with(org, "A", name="Only")

    with pytest.raises(ValidationError) as caught:
        pipeline_delete(pipeline=only, **as_admin)

    assert caught.value.code == "last_pipeline"


def test_deleting_a_pipeline_moves_its_deals_to_the_first_stage_of_another(org, as_admin):
    sales = pipeline_with(org, "A", "B", name="Sales")
    sales.is_default = True
    sales.save()
    homes = pipeline_with(org, "First", "Second", name="Homes")
    deals = [
        DealFactory(org=org, stage=stage_of(sales, "A")),
        DealFactory(org=org, stage=stage_of(sales, "B")),
    ]

    moved = pipeline_delete(pipeline=sales, move_to=homes, **as_admin)

    assert moved == 2
    assert not Pipeline.objects.for_org(org).filter(pk=sales.pk).exists()
    assert not Stage.objects.for_org(org).filter(pipeline_id=sales.pk).exists()
    first = stage_of(homes, "First")
    for deal in deals:
        deal.refresh_from_db()
        assert (deal.pipeline_id, deal.stage_id) == (homes.pk, first.pk)
    history = StageHistory.objects.for_org(org)
    assert history.count() == 2 and {h.pipeline_id for h in history} == {homes.pk}
    assert Pipeline.objects.for_org(org).get(pk=homes.pk).is_default
    payload = events(org, "pipeline.deleted")[0].payload
    assert payload["moved_deals"] == 2 and payload["moved_to_stage"] == str(first.public_id)


def test_deleting_a_pipeline_can_move_its_deals_to_a_chosen_stage(org, as_admin):
    sales = pipeline_with(org, "A", name="Sales")
    homes = pipeline_with(org, "First", "Second", name="Homes")
    deal = DealFactory(org=org, stage=stage_of(sales, "A"))

    pipeline_delete(pipeline=sales, move_to_stage=stage_of(homes, "Second"), **as_admin)

    deal.refresh_from_db()
    assert deal.stage_id == stage_of(homes, "Second").pk


def test_a_pipeline_delete_target_must_be_another_pipeline_of_the_org(org, other_org, as_admin):
    sales = pipeline_with(org, "A", name="Sales")
    pipeline_with(org, "B", name="Homes")
    theirs = pipeline_with(other_org, "T", name="Theirs")
    DealFactory(org=org, stage=stage_of(sales, "A"))

    for kwargs in (
        {"move_to": sales},
        {"move_to": theirs},
        {"move_to_stage": stage_of(sales, "A")},
        {"move_to_stage": stage_of(theirs, "T")},
    ):
        with pytest.raises(ValidationError):
            pipeline_delete(pipeline=sales, **kwargs, **as_admin)

    assert Pipeline.objects.for_org(org).filter(pk=sales.pk).exists()


def test_when_the_default_pipeline_goes_the_first_other_becomes_default(org, as_admin):
    sales = pipeline_create(org=org, name="Sales", template_key="b2b_sales", **as_admin)
    homes = pipeline_create(org=org, name="Homes", template_key="real_estate", **as_admin)

    pipeline_delete(pipeline=sales, **as_admin)

    assert Pipeline.objects.for_org(org).get().pk == homes.pk
    assert Pipeline.objects.for_org(org).get().is_default


# Reasons --------------------------------------------------------------------------------------


def test_reasons_are_added_renamed_turned_off_and_on(org, as_admin):
    first = reason_create(org=org, kind="lost", name="Too expensive", **as_admin)
    second = reason_create(org=org, kind="lost", name="Competitor", **as_admin)
    won = reason_create(org=org, kind="won", name="Too expensive", **as_admin)  # other list

    reason_update(reason=first, name="Price", **as_admin)
    reason_deactivate(reason=second, **as_admin)

    rows = {r.pk: r for r in DealReason.objects.for_org(org)}
    assert rows[first.pk].name == "Price"
    assert not rows[second.pk].is_active
    assert rows[won.pk].kind == "won"
    assert second.position > first.position

    reason_reactivate(reason=second, **as_admin)
    assert DealReason.objects.for_org(org).get(pk=second.pk).is_active
    verbs = list(
        AuditEvent.objects.for_org(org)
        .filter(verb__startswith="deal_reason.")
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "deal_reason.created",
        "deal_reason.created",
        "deal_reason.created",
        "deal_reason.updated",
        "deal_reason.deactivated",
        "deal_reason.reactivated",
    ]


def test_reason_names_are_unique_in_their_list(org, as_admin):
    reason = reason_create(org=org, kind="lost", name="Price", **as_admin)
    other = reason_create(org=org, kind="lost", name="Timing", **as_admin)
    reason_deactivate(reason=reason, **as_admin)

    with pytest.raises(ValidationError) as caught:
        reason_create(org=org, kind="lost", name="PRICE", **as_admin)
    assert "turn it back on" in caught.value.message_dict["name"][0]
    with pytest.raises(ValidationError) as caught:
        reason_update(reason=reason, name="timing", **as_admin)
    assert caught.value.message_dict == {"name": ["This list already has a reason with this name."]}
    with pytest.raises(ValidationError):
        reason_create(org=org, kind="maybe", name="Anything", **as_admin)
    assert DealReason.objects.for_org(org).get(pk=other.pk).name == "Timing"


# Who may change them --------------------------------------------------------------------------


@pytest.mark.parametrize("role_key", ["team", "executive", "viewer", "board"])
def test_only_settings_admins_change_pipelines(org, role_key):
    rep = member(org, role_key)
    pipeline = pipeline_with(org, "A", "B", name="Sales")
    stage = stage_of(pipeline, "A")
    reason = DealReason.objects.create(org=org, kind="lost", name="Price")
    who = {"actor": Actor.for_user(rep.user), "policy": Policy(rep)}
    calls = [
        lambda: pipeline_create(org=org, name="Mine", template_key="b2b_sales", **who),
        lambda: pipeline_rename(pipeline=pipeline, name="Mine", **who),
        lambda: pipeline_set_default(pipeline=pipeline, **who),
        lambda: pipeline_delete(pipeline=pipeline, **who),
        lambda: stage_add(pipeline=pipeline, data={"name": "C"}, **who),
        lambda: stage_update(stage=stage, data={"probability": 90}, **who),
        lambda: stage_reorder(pipeline=pipeline, ordered_public_ids=[], **who),
        lambda: stage_move(stage=stage, direction="down", **who),
        lambda: stage_delete(stage=stage, **who),
        lambda: reason_create(org=org, kind="won", name="Luck", **who),
        lambda: reason_update(reason=reason, name="Cost", **who),
        lambda: reason_deactivate(reason=reason, **who),
    ]

    for call in calls:
        with pytest.raises(PermissionDenied):
            call()

    assert names(pipeline) == ["A", "B"]
    assert Pipeline.objects.for_org(org).get().name == "Sales"
    assert DealReason.objects.for_org(org).get().is_active


# Imports land in "Stage" ----------------------------------------------------------------------


@pytest.fixture
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def run_import(membership, rows, mapping):
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    actor, policy = Actor.for_user(membership.user), Policy(membership)
    job = import_services.import_create(
        org=membership.org,
        actor=actor,
        policy=policy,
        upload=SimpleUploadedFile("people.csv", out.getvalue().encode()),
    )
    job = import_services.import_set_mapping(
        job=job,
        actor=actor,
        policy=policy,
        mapping=mapping,
        defaults={},
        import_policy="upsert",
        blank_policy="keep",
    )
    import_services.import_start(job=job, actor=actor, policy=policy)
    import_services.run_import(org_id=job.org_id, job_id=job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.usefixtures("_uploads_in_tmp")
def test_imported_contacts_land_in_stage_unless_the_file_says_otherwise(org, owner):
    existing = Contact.objects.create(
        org=org, email="known@example.com", lifecycle_stage="customer"
    )

    run_import(
        owner,
        [["Email"], ["new@example.com"], ["known@example.com"]],
        {"Email": "email"},
    )
    run_import(
        owner,
        [["Email", "Lifecycle"], ["mapped@example.com", "qualified"], ["blank@example.com", ""]],
        {"Email": "email", "Lifecycle": "lifecycle_stage"},
    )

    stages = dict(Contact.objects.for_org(org).values_list("email", "lifecycle_stage"))
    assert stages["new@example.com"] == Contact.Stage.STAGE  # for review
    assert stages["mapped@example.com"] == Contact.Stage.QUALIFIED  # the file's value wins
    assert stages["blank@example.com"] == Contact.Stage.STAGE  # an empty cell: the default
    assert stages[existing.email] == Contact.Stage.CUSTOMER  # an update leaves it alone
    assert Contact._meta.get_field("lifecycle_stage").default == Contact.Stage.LEAD

"""The deal services: create, move (order and history), close with a reason, reopen,
permissions and record scope, and the timelines they write."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from contacts.models import Activity
from crm.models import OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Deal, DealContact, StageHistory
from pipeline.services.deals import (
    DealFieldLocked,
    deal_close,
    deal_create,
    deal_move,
    deal_reopen,
    deal_update,
)
from tests.factories import (
    ContactFactory,
    DealReasonFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    org = OrganizationFactory(base_currency="EUR")
    admin = member(org, "admin")
    pipeline = PipelineFactory(org=org, is_default=True)
    stages = [
        StageFactory(org=org, pipeline=pipeline, name=name, position=n, probability=p)
        for n, (name, p) in enumerate([("Qualify", 10), ("Propose", 50), ("Negotiate", 80)])
    ]
    return org, admin, pipeline, stages


def _create(org, admin, **data):
    return deal_create(
        org=org,
        actor=Actor.for_user(admin.user),
        data={"title": "Deal", **data},
        policy=Policy(admin),
    )


def test_create_defaults_to_first_stage_base_currency_and_the_creator(world):
    org, admin, _pipeline, stages = world
    deal = _create(org, admin, value="1,250.50")
    assert deal.stage == stages[0]
    assert deal.currency == "EUR"
    assert deal.value == Decimal("1250.50")
    assert deal.owner == admin.user
    assert deal.effective_probability == 10
    history = StageHistory.objects.for_org(org).get(deal=deal)
    assert history.from_stage is None and history.to_stage == stages[0]
    assert OutboxEvent.objects.for_org(org).filter(event_type="deal.created").count() == 1


def test_bad_fields_are_reported_together_and_nothing_is_written(world):
    org, admin, *_ = world
    with pytest.raises(ValidationError) as exc:
        _create(org, admin, title="", value="-5", currency="EURO", probability="120")
    assert set(exc.value.message_dict) == {"title", "value", "currency", "probability"}
    assert not Deal.objects.for_org(org).exists()


def test_move_between_columns_keeps_order_and_writes_history_and_timelines(world):
    org, admin, _pipeline, stages = world
    contact = ContactFactory(org=org)
    other = ContactFactory(org=org)
    a = _create(org, admin, title="A", stage=stages[1].public_id)
    b = _create(org, admin, title="B", stage=stages[1].public_id)
    moving = _create(org, admin, title="M", contact=contact.public_id)
    DealContact.objects.create(org=org, deal=moving, contact=other, role="champion")
    deal_move(
        deal=moving,
        actor=Actor.for_user(admin.user),
        stage=stages[1].public_id,
        before=a.public_id,
        after=b.public_id,
        policy=Policy(admin),
    )
    column = list(
        Deal.objects.for_org(org)
        .filter(stage=stages[1])
        .order_by("position")
        .values_list("title", flat=True)
    )
    assert column == ["A", "M", "B"]
    move = StageHistory.objects.for_org(org).filter(deal=moving).order_by("-id").first()
    assert (move.from_stage, move.to_stage, move.actor) == (stages[0], stages[1], admin.user)
    entries = Activity.objects.for_org(org).filter(type=Activity.Type.DEAL_STAGE_CHANGED)
    assert {e.contact_id for e in entries} == {contact.pk, other.pk}
    assert OutboxEvent.objects.for_org(org).filter(event_type="deal.stage_changed").exists()


def test_move_within_a_column_only_reorders(world):
    org, admin, _pipeline, _stages = world
    a, _b, c = (_create(org, admin, title=t) for t in "ABC")
    deal_move(
        deal=c,
        actor=Actor.for_user(admin.user),
        before=None,
        after=a.public_id,
        policy=Policy(admin),
    )
    titles = list(Deal.objects.for_org(org).order_by("position").values_list("title", flat=True))
    assert titles == ["C", "A", "B"]
    assert StageHistory.objects.for_org(org).filter(deal=c).count() == 1


def test_repeated_moves_into_one_gap_renumber_the_column(world):
    org, admin, _pipeline, _stages = world
    a, b = _create(org, admin, title="A"), _create(org, admin, title="B")
    movers = [_create(org, admin, title=f"M{n}") for n in range(60)]
    for mover in movers:
        deal_move(
            deal=mover, actor=Actor.for_user(admin.user), before=a.public_id, after=b.public_id
        )
        b = mover
    order = list(Deal.objects.for_org(org).order_by("position").values_list("title", flat=True))
    assert order[0] == "A" and order[-1] == "B"
    assert order[1:-1] == [f"M{n}" for n in reversed(range(60))]


def test_won_and_lost_require_a_reason_of_their_kind(world):
    org, admin, *_ = world
    deal = _create(org, admin)
    lost_reason = DealReasonFactory(org=org, kind="lost", name="Price")
    won_reason = DealReasonFactory(org=org, kind="won", name="Fit")
    actor = Actor.for_user(admin.user)
    with pytest.raises(ValidationError):
        deal_close(deal=deal, actor=actor, status="won", reason=None)
    with pytest.raises(ValidationError):
        deal_close(deal=deal, actor=actor, status="won", reason=lost_reason.public_id)
    deal = deal_close(deal=deal, actor=actor, status="lost", reason=lost_reason.public_id)
    assert deal.status == "lost" and deal.closed_at and deal.effective_probability == 0
    deal = deal_reopen(deal=deal, actor=actor)
    assert deal.status == "open" and deal.close_reason is None
    deal = deal_close(deal=deal, actor=actor, status="won", reason=won_reason)
    assert deal.effective_probability == 100
    statuses = list(
        StageHistory.objects.for_org(org)
        .filter(deal=deal)
        .order_by("id")
        .values_list("to_status", flat=True)
    )
    assert statuses == ["open", "lost", "open", "won"]


def test_own_scope_member_cannot_touch_someone_elses_deal(world):
    org, admin, *_ = world
    rep = member(org, "team")
    deal = _create(org, admin)
    with pytest.raises(PermissionDenied):
        deal_update(
            deal=deal, actor=Actor.for_user(rep.user), data={"title": "Mine"}, policy=Policy(rep)
        )
    with pytest.raises(PermissionDenied):
        deal_move(deal=deal, actor=Actor.for_user(rep.user), policy=Policy(rep))


def test_viewer_cannot_create(world):
    org, *_ = world
    viewer = member(org, "viewer")
    with pytest.raises(PermissionDenied):
        _create(org, viewer)


def test_field_rule_locks_the_value(world):
    org, admin, *_ = world
    role = custom_role(
        org,
        permissions={
            "pipeline": {"access": True, "view": True, "create": True, "edit": True, "scope": "all"}
        },
        field_rules={"deal.value": "visible"},
    )
    from tests.factories import MembershipFactory

    locked = MembershipFactory(org=org, role=role)
    deal = _create(org, admin, value="10")
    with pytest.raises(DealFieldLocked):
        deal_update(
            deal=deal,
            actor=Actor.for_user(locked.user),
            data={"value": "99"},
            policy=Policy(locked),
        )
    deal = deal_update(
        deal=deal,
        actor=Actor.for_user(locked.user),
        data={"title": "Renamed"},
        policy=Policy(locked),
    )
    assert deal.title == "Renamed"


def test_other_orgs_stage_is_refused(world):
    org, admin, *_ = world
    foreign = StageFactory()
    with pytest.raises(ValidationError) as exc:
        _create(org, admin, stage=foreign.public_id)
    assert "stage" in exc.value.message_dict


@pytest.mark.parametrize("owner", ["not-a-uuid", "00000000-0000-4000-8000-000000000000"])
def test_an_owner_that_is_no_member_is_a_field_error(world, owner):
    org, admin, *_ = world
    with pytest.raises(ValidationError) as exc:
        _create(org, admin, owner=owner)
    assert exc.value.message_dict == {"owner": ["Choose an active member of this organization."]}


def test_a_member_of_another_org_cannot_own_a_deal(world):
    org, admin, *_ = world
    stranger = member(OrganizationFactory(), "admin")
    with pytest.raises(ValidationError) as exc:
        _create(org, admin, owner=stranger.user.public_id)
    assert "owner" in exc.value.message_dict

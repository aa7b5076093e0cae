"""The policy layer: what every built-in role may do, record scope, and field visibility.

EXPECTED below is written out by hand on purpose: a change to a role's defaults must show up
here as a failing cell and be changed deliberately, not follow the code silently."""

import pytest
from django.template import Context, Template

from crm.models import Membership, Role
from crm.permissions import (
    ACTIONS,
    BUILTIN_ROLE_KEYS,
    BUILTIN_ROLES,
    MODULE_KEYS,
    Policy,
    apply_permission_change,
    normalize_permissions,
)
from tests.factories import TeamFactory, member

# Letters: v view, c create, e edit, d delete, x export; "-" no access to the module.
MODULE_COLUMNS = [
    "contacts",
    "companies",
    "pipeline",
    "custom_objects",
    "tasks",
    "messaging",
    "analytics",
    "ai",
    "settings",
    "compliance",
    "developer",
]
EXPECTED_TABLE = """
owner     vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx
admin     vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx vcedx
board     -     -     v     -     -     -     vx    -     -     -     -
executive vcex  vcex  vcex  vcex  vcex  vcex  vcex  vcex  -     v     -
director  vcedx vcedx vcedx vcedx vcedx vcedx vx    vcedx -     v     -
team      vce   vce   vce   vce   vce   vce   v     vc    -     -     -
support   ve    v     -     -     vced  vc    -     v     -     -     -
partner   vce   vc    vce   -     vce   -     -     -     -     -     -
viewer    v     v     v     v     v     v     v     -     -     -     -
client    -     -     -     -     v     -     -     -     -     -     -
"""
# Record scope of every module the role can open: a all, t team, o own.
EXPECTED_SCOPES = """
owner     a a a a a a a a a a a
admin     a a a a a a a a a a a
board     - - a - - - a - - - -
executive a a a a a a a a - a -
director  t t t t t t a t - a -
team      o o o o o o a a - - -
support   a a - - a a - a - - -
partner   o o o - o - - - - - -
viewer    a a a a a a a - - - -
client    - - - - o - - - - - -
"""
LETTERS = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}
SCOPE_LETTERS = {"a": "all", "t": "team", "o": "own"}


def _parse(table: str) -> dict[str, dict[str, str]]:
    rows = {}
    for line in table.strip().splitlines():
        role_key, *cells = line.split()
        assert len(cells) == len(MODULE_COLUMNS), line
        rows[role_key] = dict(zip(MODULE_COLUMNS, cells, strict=True))
    return rows


EXPECTED = _parse(EXPECTED_TABLE)
SCOPES_EXPECTED = _parse(EXPECTED_SCOPES)


def expected_can(role_key: str, module: str, action: str) -> bool:
    cell = EXPECTED[role_key][module]
    return cell != "-" and action in {LETTERS[ch] for ch in cell}


def builtin_policy(role_key: str) -> Policy:
    """A Policy for an in-memory member of a built-in role, exactly as an org gets it."""
    key, name, _description, permissions = next(r for r in BUILTIN_ROLES if r[0] == role_key)
    role = Role(key=key, name=name, is_builtin=True, permissions=normalize_permissions(permissions))
    return Policy(Membership(role=role, is_active=True))


def test_expected_table_covers_every_role_and_module():
    assert list(EXPECTED) == BUILTIN_ROLE_KEYS
    assert MODULE_COLUMNS == MODULE_KEYS
    assert list(SCOPES_EXPECTED) == BUILTIN_ROLE_KEYS


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("module", MODULE_KEYS)
@pytest.mark.parametrize("role_key", BUILTIN_ROLE_KEYS)
def test_builtin_role_action_matches_expected_table(role_key, module, action):
    policy = builtin_policy(role_key)

    assert policy.can(module, action) is expected_can(role_key, module, action)
    assert policy.can_access(module) is (EXPECTED[role_key][module] != "-")


@pytest.mark.parametrize("module", MODULE_KEYS)
@pytest.mark.parametrize("role_key", BUILTIN_ROLE_KEYS)
def test_builtin_role_record_scope_matches_expected_table(role_key, module):
    cell = SCOPES_EXPECTED[role_key][module]
    policy = builtin_policy(role_key)

    assert policy.can_access(module) is (cell != "-")
    if cell != "-":
        assert policy.scope(module) == SCOPE_LETTERS[cell]


def test_roles_stored_for_a_new_org_answer_like_the_table(members):
    """The same table through the real path: roles created for an org, real memberships."""
    mismatches = []
    for role_key, membership in members.items():
        policy = Policy(Membership.objects.select_related("role").get(pk=membership.pk))
        for module in MODULE_KEYS:
            for action in ACTIONS:
                if policy.can(module, action) is not expected_can(role_key, module, action):
                    mismatches.append((role_key, module, action))
    assert mismatches == []


def test_owner_keeps_every_right_even_if_its_stored_permissions_are_emptied(org, owner):
    Role.objects.filter(pk=owner.role_id).update(permissions={}, field_rules={"email": "hidden"})
    owner.refresh_from_db()
    policy = Policy(owner)

    assert all(policy.can(m, a) for m in MODULE_KEYS for a in ACTIONS)
    assert policy.field_level("email") == "editable"


def test_deactivated_member_has_no_rights(org):
    membership = member(org, "admin", is_active=False)
    policy = Policy(membership)

    assert not any(policy.can_access(m) for m in MODULE_KEYS)
    assert Policy(None).can("contacts", "view") is False


def test_can_refuses_anything_that_is_not_an_action():
    policy = builtin_policy("admin")

    assert policy.can("contacts", "scope") is False
    assert policy.can("contacts", "delete_everything") is False
    assert policy.can("nonexistent", "view") is False
    assert policy.can("contacts", "access") is True


def test_template_lookups_reach_modules_and_still_reach_policy_attributes(org):
    membership = member(org, "viewer")
    template = Template(
        "{% if policy.contacts.view %}see{% endif %}|{% if policy.contacts.edit %}edit{% endif %}"
        "|{{ policy.membership.role.name }}"
    )

    rendered = template.render(Context({"policy": Policy(membership)}))

    assert rendered == "see||Viewer"


def test_normalize_closes_malformed_or_viewless_entries():
    raw = {
        "contacts": {"access": True, "view": False, "edit": True, "scope": "all"},
        "companies": {"access": "yes", "view": 1, "scope": "galaxy"},
        "pipeline": True,
        "tasks": {"access": True, "view": True, "scope": ["all"]},
        "unknown_module": {"access": True, "view": True},
    }

    perms = normalize_permissions(raw)

    assert set(perms) == set(MODULE_KEYS)
    assert perms["contacts"]["access"] is False and perms["contacts"]["edit"] is False
    assert perms["companies"] == {**dict.fromkeys(["access", *ACTIONS], False), "scope": "own"}
    assert perms["pipeline"]["access"] is False
    assert perms["tasks"]["access"] is True and perms["tasks"]["scope"] == "own"
    assert normalize_permissions(None)["contacts"]["access"] is False


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("access", False, dict.fromkeys(["access", *ACTIONS], False)),
        ("view", False, dict.fromkeys(["access", *ACTIONS], False)),
        ("edit", False, {"access": True, "view": True, "create": True, "edit": False}),
        ("scope", "team", {"access": True, "view": True, "create": True, "scope": "team"}),
    ],
)
def test_apply_permission_change_switching_off(field, value, expected):
    entry = {"access": True, "view": True, "create": True, "edit": True, "delete": False}
    entry.update({"export": False, "scope": "own"})

    after = apply_permission_change(entry, field, value)

    for key, wanted in expected.items():
        assert after[key] == wanted, key


@pytest.mark.parametrize("field", ["access", *ACTIONS])
def test_apply_permission_change_switching_on_opens_module_with_view(field):
    closed = {**dict.fromkeys(["access", *ACTIONS], False), "scope": "own"}

    after = apply_permission_change(closed, field, True)

    assert after["access"] is True and after["view"] is True
    assert after[field] is True
    assert [a for a in ACTIONS if after[a]] == sorted(
        {"view", field} - {"access"}, key=ACTIONS.index
    )


# Record scope against real rows ---------------------------------------------------------
@pytest.fixture
def teams(org):
    """Team North: a director and two reps (one deactivated); team South: one rep; one
    member without a team. Membership rows stand in for owned records (owner_field="user")."""
    north, south = TeamFactory(org=org, name="North"), TeamFactory(org=org, name="South")
    people = {
        "director": member(org, "director", team=north),
        "north_rep": member(org, "team", team=north),
        "north_gone": member(org, "team", team=north, is_active=False),
        "south_rep": member(org, "team", team=south),
        "loner": member(org, "director"),
        "admin": member(org, "admin"),
        "board": member(org, "board"),
    }
    return people


def _visible_users(policy, org, module="contacts"):
    rows = policy.scope_queryset(module, Membership.objects.for_org(org), owner_field="user")
    return set(rows.values_list("user_id", flat=True))


def test_team_scope_sees_own_team_including_deactivated_teammates(org, teams):
    policy = Policy(teams["director"])

    visible = _visible_users(policy, org)

    wanted = {teams[k].user_id for k in ("director", "north_rep", "north_gone")}
    assert visible == wanted


def test_team_scope_without_a_team_falls_back_to_own_records(org, teams):
    policy = Policy(teams["loner"])

    assert _visible_users(policy, org) == {teams["loner"].user_id}


def test_own_scope_sees_only_own_records(org, teams):
    policy = Policy(teams["north_rep"])

    assert _visible_users(policy, org) == {teams["north_rep"].user_id}


def test_all_scope_sees_every_record_of_the_org(org, teams):
    policy = Policy(teams["admin"])

    assert _visible_users(policy, org) == set(
        Membership.objects.for_org(org).values_list("user_id", flat=True)
    )


def test_scope_filter_for_a_module_without_access_matches_nothing(org, teams):
    policy = Policy(teams["board"])

    assert _visible_users(policy, org, module="contacts") == set()
    assert len(_visible_users(policy, org, module="pipeline")) == len(teams)


@pytest.mark.parametrize("who", ["director", "north_rep", "loner", "admin", "board"])
def test_owns_in_scope_agrees_with_scope_filter(org, teams, who):
    policy = Policy(teams[who])
    visible = _visible_users(policy, org)

    for membership in teams.values():
        assert policy.owns_in_scope("contacts", membership.user_id) is (
            membership.user_id in visible
        ), membership


def test_can_touch_needs_both_the_action_and_the_scope(org, teams):
    rep = Policy(teams["north_rep"])

    assert rep.can_touch("contacts", "edit", teams["north_rep"].user_id)
    assert not rep.can_touch("contacts", "edit", teams["south_rep"].user_id)
    assert not rep.can_touch("contacts", "delete", teams["north_rep"].user_id)


# Field visibility -----------------------------------------------------------------------
RULES = {"email": "hidden", "phone": "visible", "job_title": "editable"}


def _with_rules(org, role_key, rules=RULES):
    Role.objects.filter(org=org, key=role_key).update(field_rules=rules)
    return Policy(Membership.objects.select_related("role").get(pk=member(org, role_key).pk))


def test_hidden_rule_hides_the_field_even_for_an_admin(org):
    policy = _with_rules(org, "admin")

    assert policy.field_level("email") == "hidden"
    assert not policy.can_see_field("email")
    assert policy.hidden_fields(["email", "phone", "city"]) == {"email"}


def test_visible_rule_makes_the_field_read_only(org):
    policy = _with_rules(org, "admin")

    assert policy.field_level("phone") == "visible"
    assert policy.can_see_field("phone") and not policy.can_edit_field("phone")


def test_field_without_rule_is_editable_for_an_editor(org):
    policy = _with_rules(org, "team")

    assert policy.field_level("city") == "editable"
    assert policy.field_level("job_title") == "editable"


def test_viewer_downgrades_editable_fields_to_visible(org):
    policy = _with_rules(org, "viewer")

    assert policy.field_level("job_title") == "visible"
    assert policy.field_level("city") == "visible"
    assert policy.field_level("email") == "hidden"


def test_role_without_contacts_view_sees_no_contact_field(org):
    policy = _with_rules(org, "board")

    assert policy.field_level("city") == "hidden"
    assert policy.field_level("phone") == "hidden"


def test_owner_sees_and_edits_every_field_whatever_its_rules(org):
    policy = _with_rules(org, "owner", {"email": "hidden", "phone": "visible"})

    assert policy.field_level("email") == "editable"
    assert policy.field_level("phone") == "editable"


def test_unknown_rule_value_hides_the_field(org):
    policy = _with_rules(org, "admin", {"email": "sometimes"})

    assert policy.field_level("email") == "hidden"


def test_contact_field_rules_do_not_reach_company_fields_with_the_same_key(org):
    policy = _with_rules(org, "admin", {"owner": "hidden"})

    assert policy.field_level("owner") == "hidden"
    assert policy.field_level("owner", module="companies") == "editable"

"""Duplicate companies (issue 16, "Companies are deduplicated too"): the name and domain keys,
the groups, the merge (every relation to Company moves, found by introspection), rights,
tenancy, and Data Health → Companies with its confirmation page."""

from __future__ import annotations

import html

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from contacts.dedup.companies import (
    company_domain_key,
    company_duplicate_groups,
    company_key_name,
    company_name_keys,
)
from contacts.models import Activity, Company, Contact
from contacts.services.company_merge import (
    COMPANY_MERGE_EXCLUDED,
    company_merge_blockers,
    company_relations,
    merge_companies,
)
from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    MembershipFactory,
    custom_role,
    factory_for,
    member,
)

DUPLICATES = "/contacts/data-health/companies/"
MERGE = "/contacts/data-health/companies/merge/"


def policy_of(membership) -> Policy:
    membership.refresh_from_db()
    return Policy(membership)


def merge(membership, primary, secondary):
    return merge_companies(
        primary=primary,
        secondary=secondary,
        actor=Actor.for_user(membership.user),
        policy=policy_of(membership),
    )


def fresh(company) -> Company:
    return Company.objects.for_org(company.org_id).get(pk=company.pk)


def company(org, name, domain="", **kwargs) -> Company:
    return CompanyFactory(org=org, name=name, domain=domain, **kwargs)


def grouped(org, **kwargs) -> list[tuple[set[int], list[str]]]:
    return [(set(g.ids), g.reasons) for g in company_duplicate_groups(org, **kwargs)]


# Name keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ["ACME, Inc.", "Acme Incorporated", "acme", "The Acme Company, Inc.", "Acme Corp."],
        ["Société Générale S.A.", "Societe Generale", "SOCIÉTÉ GÉNÉRALE SA"],
        ["Müller GmbH & Co. KG", "Müller GmbH", "Muller AG", "Mueller"],
        ["Volvo AB (publ)", "Volvo AB", "Volvo"],
        ["Toyota Motor Co., Ltd.", "Toyota Motor Corporation", "Toyota Motor"],
        ["Acme Sp. z o.o.", "Acme s.r.o.", "Acme a.s.", "Acme A/S", "Acme Oy", "Acme Kft."],
        ["Acme S.à r.l.", "Acme SARL", "Acme S.A.S.", "Acme S.p.A.", "Acme S.r.l."],
        ["Acme B.V.", "Acme N.V.", "Acme S.L.", "Acme S.A. de C.V.", "Acme Ltda."],
        ["Acme Pty Ltd", "Acme Pvt. Ltd.", "Acme Pte. Ltd.", "Acme Sdn. Bhd.", "Acme K.K."],
        ["Acme UG (haftungsbeschränkt)", "Acme e.K.", "Acme SE", "Acme LLP", "Acme PLC"],
        ["Smith & Co.", "Smith and Company", "Smith"],
        ["A.C.M.E. Ltd", "ACME"],
        ["Bäckerei Ölmann GmbH", "Baeckerei Oelmann", "Backerei Olmann"],
    ],
)
def test_names_that_differ_only_in_legal_form_share_a_key(names):
    keys = [set(company_name_keys(name)) for name in names]
    first = keys[0]
    for name, key in zip(names, keys, strict=True):
        assert first & key, f"{name!r} ({key}) does not match {names[0]!r} ({first})"


def test_the_key_as_words():
    assert company_key_name("ACME, Inc.") == "acme"
    assert company_key_name("The Acme Company, Inc.") == "acme"
    assert company_key_name("Société Générale S.A.") == "societe generale"
    assert company_key_name("Müller GmbH & Co. KG") == "muller"
    assert company_key_name("Procter & Gamble") == "procter and gamble"
    assert company_key_name("Acme Holdings Co., Ltd.") == "acme holdings"
    # Suffixes only at the end: "Co" inside a name stays.
    assert company_key_name("Co Op Foods Ltd") == "co op foods"


def test_umlauts_fold_and_transliterate_but_ue_alone_does_not_become_u():
    # "Müller" is written "Mueller" in German and "Muller" on keyboards without umlauts:
    # the umlaut spelling matches both. Without the umlaut, "Mueller" and "Muller" stay
    # apart, as "ue" is also plain English ("Blue", "Queen").
    assert set(company_name_keys("Müller GmbH")) == {"muller", "mueller"}
    assert company_name_keys("Mueller") == ("mueller",)
    assert not set(company_name_keys("Mueller")) & set(company_name_keys("Muller"))
    assert company_name_keys("Blue Inc") == ("blue",)


def test_a_name_that_is_only_a_legal_form_keeps_it():
    assert company_key_name("Company") == "company"
    assert company_key_name("The Company") == "company"
    assert company_key_name("Inc.") == "inc"
    assert company_key_name("GmbH & Co. KG") != ""
    assert not set(company_name_keys("Company")) & set(company_name_keys("Acme Company"))
    assert company_name_keys("!!!") == ()
    assert company_name_keys("") == ()


def test_different_companies_keep_different_keys():
    pairs = [
        ("Acme", "Acme Holdings"),
        ("Procter & Gamble", "Procter"),
        ("General Motors", "General Mills"),
        ("Bank of America Corp", "America Corp"),
    ]
    for a, b in pairs:
        assert not set(company_name_keys(a)) & set(company_name_keys(b)), (a, b)


# Domain keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "website", "key"),
    [
        ("acme.com", "", "acme.com"),
        ("WWW.Acme.COM", "", "acme.com"),
        ("", "https://www.Acme.com/about-us?ref=x", "acme.com"),
        ("", "http://acme.com:8080", "acme.com"),
        ("", "acme.com/de", "acme.com"),
        ("", "https://shop.acme.co.uk/", "shop.acme.co.uk"),
        ("", "https://bücher.de", "xn--bcher-kva.de"),
        ("acme.com", "https://other.example", "acme.com"),  # the domain field wins
        # Pages on shared platforms and free mail hosts are nobody's domain.
        ("", "https://www.linkedin.com/company/acme", ""),
        ("", "https://acme.wordpress.com", ""),
        ("", "http://gmail.com", ""),
        ("", "ftp://acme.com", ""),
        ("", "not a url", ""),
        ("", "", ""),
    ],
)
def test_domain_key(domain, website, key):
    assert company_domain_key(domain, website) == key


# Groups ------------------------------------------------------------------------------------


def test_groups_by_domain_from_the_website_when_the_domain_is_empty(org):
    a = company(org, "Acme Widgets", "acme.com")
    b = company(org, "Widget Factory", website="https://www.acme.com/contact")
    c = company(org, "Other", website="http://ACME.com")
    company(org, "Unrelated", "unrelated.example")

    assert grouped(org) == [({a.pk, b.pk, c.pk}, ["same domain acme.com"])]


def test_groups_by_name_without_legal_suffix(org):
    a = company(org, "ACME, Inc.", "acme-one.example")
    b = company(org, "Acme Incorporated", "acme-two.example")
    c = company(org, "acme")
    company(org, "Acme Holdings")

    assert grouped(org) == [({a.pk, b.pk, c.pk}, ["same name without legal suffix: acme"])]


def test_a_group_joins_domain_and_name_matches_with_both_reasons(org):
    a = company(org, "Globex GmbH", "globex.de")
    b = company(org, "Globex", website="https://globex.de")
    c = company(org, "Globex AG")

    [(ids, reasons)] = grouped(org)
    assert ids == {a.pk, b.pk, c.pk}
    assert set(reasons) == {"same domain globex.de", "same name without legal suffix: globex"}


def test_umlaut_spellings_group_through_the_umlaut(org):
    a = company(org, "Müller GmbH & Co. KG")
    b = company(org, "Mueller")
    c = company(org, "Muller Ltd")

    [(ids, reasons)] = grouped(org)
    assert ids == {a.pk, b.pk, c.pk}
    assert "same name without legal suffix: muller" in reasons
    assert "same name without legal suffix: mueller" in reasons


def test_archived_companies_and_other_orgs_are_left_out(org, other_org):
    company(org, "Initech LLC")
    company(org, "Initech", is_archived=True, archived_at=timezone.now())
    company(other_org, "Initech Inc")
    company(other_org, "Initech")

    assert grouped(org) == []
    assert len(grouped(other_org)) == 1


def test_bare_legal_forms_do_not_match_everything(org):
    company(org, "Company")
    company(org, "Acme Company")
    company(org, "Beta Company")
    company(org, "Inc.")

    assert grouped(org) == []


def test_the_scope_narrows_the_candidates(org):
    rep = member(org, "team")
    mine = company(org, "Hooli Inc", owner=rep.user)
    company(org, "Hooli")  # not the rep's
    also_mine = company(org, "Hooli Ltd", owner=rep.user)
    scoped = Company.objects.for_org(org).filter(policy_of(rep).scope_filter("companies"))

    assert grouped(org, companies=scoped) == [
        ({mine.pk, also_mine.pk}, ["same name without legal suffix: hooli"])
    ]
    assert len(grouped(org)[0][0]) == 3


def test_grouping_reads_the_companies_in_one_query(org, django_assert_max_num_queries):
    for n in range(30):
        company(org, f"Firm {n} GmbH")
        company(org, f"Firm {n} AG")
    with django_assert_max_num_queries(2):
        groups = company_duplicate_groups(org)
    assert len(groups) == 30


# Merge -------------------------------------------------------------------------------------


def every_relation_to_company():
    out = []
    for rel in Company._meta.get_fields(include_hidden=True):
        if rel.is_relation and rel.auto_created and not rel.concrete and not rel.many_to_many:
            out.append(rel.field)
    return out


def key_of(field) -> str:
    return f"{field.model._meta.label}.{field.name}"


def test_every_relation_to_company_moves_on_merge(org, owner):
    primary, secondary = company(org, "Acme", "acme.com"), company(org, "ACME Inc.")
    relations = every_relation_to_company()
    keys = {key_of(f) for f in relations}
    assert set(COMPANY_MERGE_EXCLUDED) <= keys
    assert all(reason.strip() for reason in COMPANY_MERGE_EXCLUDED.values())
    assert {key_of(f) for f in company_relations()} == keys
    rows = {}
    for field in relations:
        if key_of(field) in COMPANY_MERGE_EXCLUDED:
            continue
        maker = factory_for(field.model)
        assert maker is not None, f"No factory for {field.model._meta.label}"
        rows[key_of(field)] = (field, maker(org=org, **{field.name: secondary}))
    for key in [
        "contacts.Contact.company",
        "contacts.Activity.company",
        "contacts.Note.company",
        "contacts.Task.company",
        "pipeline.Deal.company",
    ]:
        assert key in rows

    result = merge(owner, primary, secondary)

    not_moved = []
    for key, (field, row) in rows.items():
        current = field.model._default_manager.filter(pk=row.pk).values_list(
            field.attname, flat=True
        )
        if list(current) != [primary.pk]:
            not_moved.append(key)
        elif row.pk not in result.moved.get(key, []):
            not_moved.append(f"{key} (not reported)")
    assert not_moved == [], f"Relations to Company that did not move: {not_moved}"


def test_merge_fills_the_primarys_empty_fields_and_keeps_its_own(org, owner):
    primary = company(
        org, "Acme", "", industry="Manufacturing", custom={"tier": "gold", "note": ""}
    )
    secondary = company(
        org,
        "ACME Inc.",
        "acme.com",
        website="https://acme.com",
        industry="Retail",
        size="51-200",
        description="Makes everything.",
        custom={"tier": "silver", "note": "key account", "region": "EU"},
    )

    result = merge(owner, primary, secondary)

    kept, gone = fresh(primary), fresh(secondary)
    assert kept.name == "Acme"
    assert kept.industry == "Manufacturing"  # filled already: the primary's stays
    assert kept.domain == "acme.com"  # the domain moved (one company per domain)
    assert gone.domain == ""
    assert kept.website == "https://acme.com"
    assert kept.size == "51-200"
    assert kept.description == "Makes everything."
    assert kept.custom == {"tier": "gold", "note": "key account", "region": "EU"}
    assert set(result.filled) == {
        "domain",
        "website",
        "size",
        "description",
        "custom.note",
        "custom.region",
    }


def test_merge_archives_the_secondary_audits_and_emits(org, owner):
    primary, secondary = company(org, "Acme", "acme.com"), company(org, "ACME Inc.")
    contact = ContactFactory(org=org, company=secondary)

    merge(owner, primary, secondary)

    gone = fresh(secondary)
    assert gone.is_archived and gone.archived_at is not None
    assert Contact.objects.for_org(org).get(pk=contact.pk).company_id == primary.pk
    entry = AuditEvent.objects.for_org(org).get(verb="company.merged")
    assert entry.object_id == str(primary.public_id)
    assert entry.actor_user == owner.user
    assert entry.changes["secondary"] == [None, str(secondary.public_id)]
    assert entry.changes["moved"] == [None, 1]
    event = OutboxEvent.objects.for_org(org).get(event_type="company.merged")
    assert event.payload["primary"] == str(primary.public_id)
    assert event.payload["secondary"] == str(secondary.public_id)
    assert event.payload["moved"] == {"contacts.Contact.company": 1}
    merged = Activity.objects.for_org(org).filter(type="merged")
    assert set(merged.values_list("company_id", flat=True)) == {primary.pk, secondary.pk}


def test_an_archived_company_cannot_be_merged(org, owner):
    primary = company(org, "Acme")
    secondary = company(org, "Acme Inc", is_archived=True, archived_at=timezone.now())
    with pytest.raises(ValidationError):
        merge(owner, primary, secondary)
    with pytest.raises(ValidationError):
        merge(owner, primary, primary)


def test_companies_of_two_orgs_cannot_be_merged(org, other_org, owner):
    primary, secondary = company(org, "Acme"), company(other_org, "Acme Inc")
    with pytest.raises(ValidationError):
        merge(owner, primary, secondary)
    assert not fresh(secondary).is_archived


def _own_scope_company_deleter(org):
    rights = {"access": True, "view": True, "create": True, "edit": True, "delete": True}
    role = custom_role(
        org,
        permissions={
            "contacts": {**rights, "scope": "own"},
            "companies": {**rights, "scope": "own"},
        },
    )
    return MembershipFactory(org=org, role=role)


def test_an_own_scope_rep_cannot_merge_another_members_company(org):
    rep = _own_scope_company_deleter(org)
    mine = company(org, "Acme", owner=rep.user)
    theirs = company(org, "Acme Inc", owner=member(org, "admin").user)

    with pytest.raises(PermissionDenied):
        merge(rep, mine, theirs)
    with pytest.raises(PermissionDenied):
        merge(rep, theirs, mine)
    assert not fresh(theirs).is_archived and not fresh(mine).is_archived
    assert company_merge_blockers(primary=mine, secondary=theirs, policy=policy_of(rep))


def test_an_own_scope_rep_with_delete_rights_merges_their_own_companies(org):
    rep = _own_scope_company_deleter(org)
    primary = company(org, "Acme", owner=rep.user)
    secondary = company(org, "Acme Inc", owner=rep.user)

    assert company_merge_blockers(primary=primary, secondary=secondary, policy=policy_of(rep)) == []
    merge(rep, primary, secondary)
    assert fresh(secondary).is_archived


@pytest.mark.parametrize("role_key", ["viewer", "team", "support"])
def test_roles_without_company_edit_and_delete_cannot_merge(org, role_key):
    someone = member(org, role_key)
    primary = company(org, "Acme", owner=someone.user)
    secondary = company(org, "Acme Inc", owner=someone.user)
    with pytest.raises(PermissionDenied):
        merge(someone, primary, secondary)
    assert not fresh(secondary).is_archived


# Data Health → Companies -------------------------------------------------------------------


def confirm_url(primary, *others) -> str:
    ids = "&".join(f"ids={c.public_id}" for c in (primary, *others))
    return f"{MERGE}?primary={primary.public_id}&{ids}"


def test_the_page_lists_groups_with_reasons(org, owner, client_as):
    a = company(org, "Acme <b>Inc</b>", "acme.com")
    b = company(org, "Acme Corp", website="https://www.acme.com")
    ContactFactory(org=org, company=b)
    ContactFactory(org=org, company=b)
    company(org, "Lonely Ltd")

    response = client_as(owner).get(DUPLICATES)

    assert response.status_code == 200
    text = response.content.decode()
    assert "same domain acme.com" in text
    assert "Acme &lt;b&gt;Inc&lt;/b&gt;" in text and "<b>Inc</b>" not in text
    assert "Lonely Ltd" not in text
    # The company most contacts use is the default to keep.
    assert f'name="primary" value="{b.public_id}" id="keep-{b.public_id}"' in text
    assert (
        f'value="{b.public_id}" id="keep-{b.public_id}" aria-label="Keep Acme Corp" checked' in text
    )
    assert f'name="ids" value="{a.public_id}"' in text
    assert reverse("contacts:company_merge") in text


def test_the_page_has_an_empty_state(org, owner, client_as):
    company(org, "Acme")
    response = client_as(owner).get(DUPLICATES)
    assert response.status_code == 200
    assert "No duplicate companies" in response.content.decode()


def test_the_contact_data_health_page_links_to_companies(org, owner, client_as):
    response = client_as(owner).get(reverse("contacts:data_health"))
    assert DUPLICATES in response.content.decode()
    support = client_as(member(org, "support")).get(reverse("contacts:data_health"))
    assert support.status_code == 200
    assert DUPLICATES not in support.content.decode()


def test_merge_through_the_confirmation_page(org, owner, client_as):
    primary = company(org, "Acme", "acme.com")
    second = company(org, "ACME Inc.", industry="Retail")
    third = company(org, "Acme Corporation")
    contact = ContactFactory(org=org, company=third)
    client = client_as(owner)

    page = client.get(confirm_url(primary, second, third))
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert "Keep <strong data-merge-primary>“Acme”</strong>" in text
    assert "ACME Inc." in text and "Acme Corporation" in text
    assert 'data-confirm="Merge “ACME Inc.”, “Acme Corporation” into “Acme”?' in text
    assert not fresh(second).is_archived  # nothing changes on GET

    response = client.post(
        MERGE, {"primary": str(primary.public_id), "ids": [second.public_id, third.public_id]}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse(
        "contacts:company_detail", kwargs={"public_id": primary.public_id}
    )
    assert fresh(second).is_archived and fresh(third).is_archived
    assert fresh(primary).industry == "Retail"
    assert Contact.objects.for_org(org).get(pk=contact.pk).company_id == primary.pk
    assert AuditEvent.objects.for_org(org).filter(verb="company.merged").count() == 2
    assert company_duplicate_groups(org) == []


def test_a_refused_merge_changes_nothing_and_says_why(org, client_as):
    rep = _own_scope_company_deleter(org)
    mine = company(org, "Acme", owner=rep.user)
    also_mine = company(org, "Acme GmbH", owner=rep.user)
    client = client_as(rep)

    page = client.get(confirm_url(mine, also_mine))
    assert page.status_code == 200 and "data-confirm" in page.content.decode()
    # Archived meanwhile: the whole merge is refused, nothing half-done.
    Company.objects.for_org(org).filter(pk=also_mine.pk).update(
        is_archived=True, archived_at=timezone.now()
    )
    response = client.post(MERGE, {"primary": str(mine.public_id), "ids": [also_mine.public_id]})
    assert response.status_code == 409
    assert "is archived" in html.unescape(response.content.decode())
    assert not AuditEvent.objects.for_org(org).filter(verb="company.merged").exists()


def test_companies_outside_the_members_scope_are_a_404(org, client_as):
    rep = _own_scope_company_deleter(org)
    mine = company(org, "Acme", owner=rep.user)
    theirs = company(org, "Acme Inc", owner=member(org, "admin").user)
    client = client_as(rep)

    assert client.get(confirm_url(mine, theirs)).status_code == 404
    response = client.post(MERGE, {"primary": str(mine.public_id), "ids": [theirs.public_id]})
    assert response.status_code == 404
    assert not fresh(theirs).is_archived
    # Nor does the list show them.
    assert "Acme Inc" not in client.get(DUPLICATES).content.decode()


def test_another_orgs_company_is_a_404(org, other_org, owner, client_as):
    mine = company(org, "Acme")
    theirs = company(other_org, "Acme Inc")
    client = client_as(owner)

    assert client.get(confirm_url(mine, theirs)).status_code == 404
    response = client.post(MERGE, {"primary": str(theirs.public_id), "ids": [mine.public_id]})
    assert response.status_code == 404
    assert not fresh(theirs).is_archived and not fresh(mine).is_archived


@pytest.mark.parametrize("role_key", ["viewer", "support", "board"])
def test_members_without_the_rights_get_403(org, client_as, role_key):
    primary, secondary = company(org, "Acme"), company(org, "Acme Inc")
    client = client_as(member(org, role_key))

    assert client.get(DUPLICATES).status_code == 403
    response = client.post(MERGE, {"primary": str(primary.public_id), "ids": [secondary.public_id]})
    assert response.status_code == 403
    assert not fresh(secondary).is_archived


def test_a_rep_without_delete_rights_sees_groups_but_no_merge_button(org, client_as):
    rep = member(org, "team")
    primary = company(org, "Acme", owner=rep.user)
    secondary = company(org, "Acme Inc", owner=rep.user)
    client = client_as(rep)

    text = client.get(DUPLICATES).content.decode()
    assert "same name without legal suffix: acme" in text
    assert "Review merge" not in text
    response = client.post(MERGE, {"primary": str(primary.public_id), "ids": [secondary.public_id]})
    assert response.status_code == 403
    assert not fresh(secondary).is_archived


def test_a_confirmation_without_a_primary_asks_for_one(org, owner, client_as):
    a, b = company(org, "Acme"), company(org, "Acme Inc")
    response = client_as(owner).get(f"{MERGE}?ids={a.public_id}&ids={b.public_id}")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Choose the company to keep." in text
    assert "data-confirm" not in text


def test_too_many_companies_at_once_are_refused_with_a_message(org, owner, client_as):
    primary = company(org, "Acme")
    others = [company(org, f"Acme {n} Inc") for n in range(21)]
    client = client_as(owner)

    page = client.get(confirm_url(primary, *others))
    assert page.status_code == 200
    assert "Merge at most 20 companies" in page.content.decode()
    response = client.post(
        MERGE, {"primary": str(primary.public_id), "ids": [c.public_id for c in others]}
    )
    assert response.status_code == 200
    assert not Company.objects.for_org(org).filter(is_archived=True).exists()


def test_a_merged_companys_domain_and_name_lead_to_the_company_kept(org, owner):
    from contacts.services.companies import company_for

    kept = company(org, "Acme", "acme.com")
    gone = company(org, "ACME Ltd", "acme.co.uk")
    merge(owner, kept, gone)
    assert fresh(gone).merged_into_id == kept.pk
    assert company_for(org, domain="acme.co.uk") == kept
    assert company_for(org, name="ACME Ltd") == kept

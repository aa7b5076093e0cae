"""Contacts → Data Health: the pair list, the compare page, "Not a duplicate", merge and
undo through the pages, the other ways into a merge (Actions → Merge, the bulk bar), and who
may see and do what (rights, record scope, tenancy, escaping)."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.dedup.models import (
    DedupSettings,
    DuplicateDismissal,
    DuplicatePair,
    MergeRecord,
    ordered_pair,
)
from contacts.models import Contact
from crm import jobs
from crm.models import BackgroundJob
from tests.factories import ContactFactory, member

DATA_HEALTH = "/contacts/data-health/"


def make_pair(org, a, b, *, score=0.95, band="probable", reasons=("same phone",)):
    low, high = ordered_pair(a.pk, b.pk)
    return DuplicatePair.objects.for_org(org).create(
        org=org,
        contact_a_id=low,
        contact_b_id=high,
        score=score,
        band=band,
        reasons=list(reasons),
    )


def compare_url(primary, secondary):
    return reverse(
        "contacts:merge_compare",
        kwargs={"primary": primary.public_id, "secondary": secondary.public_id},
    )


def dismiss_url(primary, secondary):
    return reverse(
        "contacts:merge_dismiss",
        kwargs={"primary": primary.public_id, "secondary": secondary.public_id},
    )


def undo_url(record):
    return reverse("contacts:merge_undo", kwargs={"public_id": record.public_id})


def detail_url(contact):
    return reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})


def person(org, first, last, **kwargs):
    return ContactFactory(org=org, first_name=first, last_name=last, **kwargs)


def text_of(response) -> str:
    return response.content.decode()


@pytest.fixture
def janes(org, owner):
    """Two records of one person: the older one with an old job title, the newer one edited
    later with the current title."""
    older = person(
        org, "Jane", "Doe", email="jane@old.example", job_title="Analyst", owner=owner.user
    )
    newer = person(
        org, "Jane", "Doe", email="jane.doe@new.example", job_title="Director", owner=owner.user
    )
    Contact.objects.filter(pk=newer.pk).update(updated_at=timezone.now() + dt.timedelta(hours=1))
    newer.refresh_from_db()
    return older, newer


# The pair list ----------------------------------------------------------------------------


def test_pairs_are_ranked_probable_first_then_by_score(org, owner, client_as):
    a, b, c, d, e, f = (person(org, name, "Test", owner=owner.user) for name in "ABCDEF")
    make_pair(org, a, b, score=0.91, band="probable", reasons=["names 93% alike"])
    make_pair(org, c, d, score=0.97, band="probable", reasons=["same phone", "same postal code"])
    # A possible pair scoring above a probable one (thresholds changed since) still comes last.
    make_pair(org, e, f, score=0.95, band="possible", reasons=["same email domain"])

    page = text_of(client_as(owner).get(DATA_HEALTH))

    order = [m.group(1) for m in re.finditer(r"<td class=\"num\"><span[^>]*>(\d+)%</span>", page)]
    assert order == ["97", "91", "95"]
    assert "same phone" in page and "same postal code" in page and "names 93% alike" in page
    assert page.count("Probable</span>") == 2 and page.count("Possible</span>") == 1
    assert detail_url(c) in page and detail_url(d) in page  # both names link to the records


def test_band_filter_shows_only_that_band(org, owner, client_as):
    a, b, c, d = (person(org, name, "Test", owner=owner.user) for name in "ABCD")
    probable = make_pair(org, a, b, band="probable")
    possible = make_pair(org, c, d, score=0.7, band="possible")

    page = text_of(client_as(owner).get(DATA_HEALTH + "?band=possible"))

    assert str(possible.public_id) in page
    assert str(probable.public_id) not in page


def test_an_unknown_band_shows_every_pair(org, owner, client_as):
    a, b = person(org, "A", "Test"), person(org, "B", "Test")
    pair = make_pair(org, a, b)
    page = text_of(client_as(owner).get(DATA_HEALTH + "?band=<b>nonsense</b>"))
    assert str(pair.public_id) in page
    assert "<b>nonsense</b>" not in page


def test_the_list_is_paged(org, owner, client_as):
    contacts = [person(org, f"P{i}", "Test") for i in range(62)]
    for i in range(31):
        make_pair(org, contacts[2 * i], contacts[2 * i + 1], score=0.5 + i / 100)
    client = client_as(owner)

    first = text_of(client.get(DATA_HEALTH))
    assert first.count("data-pair=") == 25
    next_href = html.unescape(re.search(r'rel="next" href="([^"]+)"', first).group(1))
    second = text_of(client.get(next_href))
    assert second.count("data-pair=") == 6
    assert set(re.findall(r'data-pair="([^"]+)"', first)).isdisjoint(
        re.findall(r'data-pair="([^"]+)"', second)
    )


def test_groups_join_pairs_that_share_a_contact(org, owner, client_as):
    a, b, c, d, e = (person(org, name, "Group", owner=owner.user) for name in "ABCDE")
    make_pair(org, a, b, score=0.9)
    make_pair(org, b, c, score=0.8, band="possible")
    make_pair(org, d, e, score=0.99)

    page = text_of(client_as(owner).get(DATA_HEALTH, {"view": "groups"}))

    groups = re.findall(
        r"<li class=\"card duplicate-group\" data-group>(.*?)</li>\s*(?=<li class|</ol>)",
        page,
        re.S,
    )
    assert len(groups) == 2
    assert "2 contacts" in groups[0] and "99%" in groups[0]  # the best group first
    assert "3 contacts" in groups[1]
    for contact in (a, b, c):
        assert detail_url(contact) in groups[1]
    assert compare_url(a, b) in groups[1] and compare_url(b, c) in groups[1]


def test_the_list_hides_emails_from_members_who_may_not_see_them(org, client_as):
    from tests.factories import custom_role

    a = person(org, "Hidden", "Mail", email="secret-a@example.com")
    b = person(org, "Hidden", "Mail", email="secret-b@example.com")
    make_pair(org, a, b)
    rights = {"access": True, "view": True, "edit": True, "delete": True, "scope": "all"}
    someone = member(org, "viewer")
    someone.role = custom_role(
        org, permissions={"contacts": rights}, field_rules={"email": "hidden"}
    )
    someone.save()
    client = client_as(someone)
    for url in (DATA_HEALTH, compare_url(a, b)):
        page = text_of(client.get(url))
        assert "Hidden Mail" in page
        assert "secret-a@example.com" not in page and "secret-b@example.com" not in page


def test_merged_or_archived_contacts_leave_the_list(org, owner, client_as):
    a, b = person(org, "A", "Test"), person(org, "B", "Test", is_archived=True)
    pair = make_pair(org, a, b)
    page = text_of(client_as(owner).get(DATA_HEALTH))
    assert str(pair.public_id) not in page
    assert "No duplicates found" in page


def test_empty_state_says_none_found_and_when_the_last_scan_ran(org, owner, client_as):
    DedupSettings.objects.for_org(org).create(
        org=org, last_scan_at=timezone.now() - dt.timedelta(hours=3)
    )
    page = text_of(client_as(owner).get(DATA_HEALTH))
    assert "No duplicates found" in page
    assert "The last scan ran" in page and "3\xa0hours ago" in page
    assert reverse("contacts:data_health_scan") in page
    assert "Scan now" in page


def test_empty_state_before_any_scan(org, owner, client_as):
    page = text_of(client_as(owner).get(DATA_HEALTH))
    assert "No duplicates found" in page
    assert "No scan has run yet." in page


def test_htmx_band_switch_returns_only_the_pairs(org, owner, client_as):
    a, b = person(org, "A", "Test"), person(org, "B", "Test")
    make_pair(org, a, b)
    page = text_of(client_as(owner, htmx=True).get(DATA_HEALTH + "?band=probable"))
    assert page.lstrip().startswith('<div id="duplicate-pairs"')
    assert "<html" not in page


def test_the_contact_list_links_to_data_health_for_editors_only(org, members, client_as):
    assert DATA_HEALTH in text_of(client_as(members["admin"]).get("/contacts/"))
    assert DATA_HEALTH not in text_of(client_as(members["viewer"]).get("/contacts/"))


# Compare ----------------------------------------------------------------------------------


def test_compare_shows_both_values_and_preselects_the_newer(org, owner, client_as, janes):
    older, newer = janes
    make_pair(org, older, newer, score=0.93, reasons=["same name", "same postal code"])

    page = text_of(client_as(owner).get(compare_url(older, newer)))

    assert "Analyst" in page and "Director" in page
    assert "93% alike" in page and "same postal code" in page
    kept = re.search(r'<input[^>]*name="keep__job_title"[^>]*value="secondary"[^>]*>', page)
    assert kept and "checked" in kept.group(0)
    other = re.search(r'<input[^>]*name="keep__job_title"[^>]*value="primary"[^>]*>', page)
    assert other and "checked" not in other.group(0)
    # No radio for a field both hold alike.
    assert 'name="keep__last_name"' not in page
    # Swap makes the other one the primary.
    assert compare_url(newer, older) in page
    # The confirmation names both records.
    assert "Merge “Jane Doe” into “Jane Doe”?" in html.unescape(page)


def test_compare_of_a_contact_with_itself_is_404(org, owner, client_as, janes):
    older, _ = janes
    assert client_as(owner).get(compare_url(older, older)).status_code == 404


def test_compare_of_an_archived_contact_says_why_it_cannot_merge(org, owner, client_as, janes):
    older, newer = janes
    Contact.objects.filter(pk=newer.pk).update(is_archived=True)
    page = text_of(client_as(owner).get(compare_url(older, newer)))
    assert "cannot be merged right now" in page
    assert "is archived; restore it before merging" in page
    assert "Merge into" not in page


def test_compare_hides_fields_the_member_may_not_see(org, client_as, janes):
    older, newer = janes
    from tests.factories import custom_role

    secretive = custom_role(
        org,
        permissions={
            "contacts": {
                "access": True,
                "view": True,
                "edit": True,
                "delete": True,
                "scope": "all",
            }
        },
        field_rules={"job_title": "hidden"},
    )
    someone = member(org, "viewer")
    someone.role = secretive
    someone.save()
    page = text_of(client_as(someone).get(compare_url(older, newer)))
    assert "Analyst" not in page and "Director" not in page
    assert 'name="keep__job_title"' not in page


def test_a_field_the_member_may_only_see_keeps_the_primarys_value(org, client_as, janes):
    from tests.factories import custom_role

    older, newer = janes
    rights = {"access": True, "view": True, "edit": True, "delete": True, "scope": "all"}
    someone = member(org, "viewer")
    someone.role = custom_role(
        org, permissions={"contacts": rights}, field_rules={"job_title": "visible"}
    )
    someone.save()
    client = client_as(someone)

    page = text_of(client.get(compare_url(older, newer)))
    radio = re.search(r'<input[^>]*name="keep__job_title"[^>]*value="secondary"[^>]*>', page)
    assert radio and "disabled" in radio.group(0)
    assert "Your role keeps the primary's value" in page

    client.post(compare_url(older, newer), {"keep__job_title": "secondary"})  # forged
    older.refresh_from_db()
    newer.refresh_from_db()
    assert newer.is_archived and older.job_title == "Analyst"


def test_a_refused_merge_shows_why_and_changes_nothing(org, owner, client_as, janes):
    older, newer = janes
    Contact.objects.filter(pk=newer.pk).update(is_archived=True)
    response = client_as(owner).post(compare_url(older, newer), {})
    assert response.status_code == 200
    assert "is archived; restore it before merging." in text_of(response)
    assert not MergeRecord.objects.for_org(org).exists()
    older.refresh_from_db()
    assert older.job_title == "Analyst"


# Not a duplicate --------------------------------------------------------------------------


def test_not_a_duplicate_remembers_the_pair_and_removes_it(org, owner, client_as, janes):
    older, newer = janes
    pair = make_pair(org, older, newer)

    response = client_as(owner).post(dismiss_url(newer, older), {"next": DATA_HEALTH}, follow=True)

    assert response.redirect_chain[-1][0] == DATA_HEALTH
    assert not DuplicatePair.objects.for_org(org).filter(pk=pair.pk).exists()
    dismissal = DuplicateDismissal.objects.for_org(org).get()
    assert (dismissal.contact_a_id, dismissal.contact_b_id) == ordered_pair(older.pk, newer.pk)
    assert dismissal.dismissed_by == owner.user
    assert "marked as different people" in html.unescape(text_of(response))
    assert str(pair.public_id) not in text_of(response)


def test_not_a_duplicate_twice_keeps_one_dismissal(org, owner, client_as, janes):
    older, newer = janes
    client = client_as(owner)
    client.post(dismiss_url(older, newer))
    client.post(dismiss_url(older, newer))
    assert DuplicateDismissal.objects.for_org(org).count() == 1


def test_not_a_duplicate_ignores_an_offsite_next(org, owner, client_as, janes):
    older, newer = janes
    response = client_as(owner).post(dismiss_url(older, newer), {"next": "https://evil.example/"})
    assert response["Location"] == DATA_HEALTH


# Merge and undo ---------------------------------------------------------------------------


def test_merge_keeps_the_chosen_values_and_lands_on_the_primary(org, owner, client_as, janes):
    older, newer = janes
    make_pair(org, older, newer)
    client = client_as(owner)

    response = client.post(
        compare_url(older, newer),
        {"keep__job_title": "primary", "keep__email": "secondary"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == detail_url(older)
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.job_title == "Analyst"  # overridden: the default was the newer "Director"
    assert older.email == "jane.doe@new.example"
    assert newer.is_archived and newer.merged_into_id == older.pk
    record = MergeRecord.objects.for_org(org).get()
    assert record.primary_id == older.pk and record.merged_by == owner.user
    assert "Merged “Jane Doe” into “Jane Doe”" in html.unescape(text_of(response))
    banner = text_of(client.get(reverse("contacts:merge_banner", args=[older.public_id])))
    assert undo_url(record) in banner and "Undo merge" in banner
    assert not DuplicatePair.objects.for_org(org).exists()


def test_merge_without_choices_takes_the_defaults(org, owner, client_as, janes):
    older, newer = janes
    client_as(owner).post(compare_url(older, newer), {})
    older.refresh_from_db()
    assert older.job_title == "Director"


def test_a_forged_choice_is_an_error_on_the_page(org, owner, client_as, janes):
    older, newer = janes
    response = client_as(owner).post(compare_url(older, newer), {"keep__job_title": "both"})
    assert response.status_code == 200
    assert "Select a valid choice" in text_of(response)
    newer.refresh_from_db()
    assert not newer.is_archived


def test_undo_puts_both_contacts_back(org, owner, client_as, janes):
    older, newer = janes
    client = client_as(owner)
    client.post(compare_url(older, newer), {"keep__job_title": "primary"})
    record = MergeRecord.objects.for_org(org).get()

    response = client.post(undo_url(record), follow=True)

    assert response.redirect_chain[-1][0] == detail_url(older)
    assert "Merge undone" in text_of(response)
    record.refresh_from_db()
    newer.refresh_from_db()
    older.refresh_from_db()
    assert record.state == MergeRecord.State.UNDONE
    assert not newer.is_archived and newer.merged_into_id is None
    assert older.email == "jane@old.example"
    banner = text_of(client.get(reverse("contacts:merge_banner", args=[older.public_id])))
    assert "Undo merge" not in banner


def test_undo_refused_after_a_later_edit_lists_what_changed(org, owner, client_as, janes):
    older, newer = janes
    client = client_as(owner)
    client.post(compare_url(older, newer), {})
    record = MergeRecord.objects.for_org(org).get()
    Contact.objects.filter(pk=older.pk).update(job_title="CEO")

    response = client.post(undo_url(record))

    assert response.status_code == 409
    page = html.unescape(text_of(response))
    assert "This merge can no longer be undone:" in page
    assert re.search(r"<li>Job title of Jane Doe was edited after the merge\.</li>", page)
    record.refresh_from_db()
    newer.refresh_from_db()
    assert record.state == MergeRecord.State.MERGED and newer.is_archived


def test_undo_refused_through_htmx_redraws_the_banner_with_the_reasons(
    org, owner, client_as, janes
):
    older, newer = janes
    client_as(owner).post(compare_url(older, newer), {})
    record = MergeRecord.objects.for_org(org).get()
    Contact.objects.filter(pk=older.pk).update(job_title="CEO")

    response = client_as(owner, htmx=True).post(
        undo_url(record), {"page_contact": str(older.public_id)}
    )

    page = text_of(response)
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="merge-banner"')
    assert 'role="alert"' in page and "Job title of Jane Doe was edited after the merge." in page
    assert undo_url(record) in page  # the merge is still there, Undo still offered


def test_undo_twice_says_it_was_already_undone(org, owner, client_as, janes):
    older, newer = janes
    client = client_as(owner)
    client.post(compare_url(older, newer), {})
    record = MergeRecord.objects.for_org(org).get()
    client.post(undo_url(record))
    response = client.post(undo_url(record))
    assert response.status_code == 409
    assert "This merge was already undone." in text_of(response)


def test_the_merged_away_contact_points_to_its_primary(org, owner, client_as, janes):
    older, newer = janes
    client = client_as(owner)
    client.post(compare_url(older, newer), {})
    banner = text_of(client.get(reverse("contacts:merge_banner", args=[newer.public_id])))
    assert "This contact was merged into" in banner and detail_url(older) in banner


# Other ways in -----------------------------------------------------------------------------


def test_contact_page_offers_merge_to_members_who_may_merge(org, members, client_as, janes):
    older, _ = janes
    pick = reverse("contacts:merge_pick", args=[older.public_id])
    assert pick in text_of(client_as(members["admin"]).get(detail_url(older)))
    # Support may edit contacts but not delete them: merging archives one, so no Merge.
    assert pick not in text_of(client_as(members["support"]).get(detail_url(older)))


def test_pick_finds_the_other_contact_and_leads_to_compare(org, owner, client_as, janes):
    older, newer = janes
    person(org, "Zed", "Other")
    make_pair(org, older, newer, score=0.88, reasons=["same name"])
    client = client_as(owner)
    pick = reverse("contacts:merge_pick", args=[older.public_id])

    page = text_of(client.get(pick))
    assert "Likely duplicates" in page and compare_url(older, newer) in page

    found = text_of(client.get(pick, {"q": "Zed"}))
    zed = Contact.objects.for_org(org).get(first_name="Zed")
    assert compare_url(older, zed) in found
    assert compare_url(older, older) not in found


def test_bulk_merge_names_both_records_before_the_compare_page(org, owner, client_as, janes):
    older, newer = janes
    # Ticked newest first (the list's order): the older record still starts as the primary.
    response = client_as(owner, htmx=True).post(
        reverse("contacts:merge_selected"), {"ids": [str(newer.public_id), str(older.public_id)]}
    )
    page = html.unescape(text_of(response))
    assert 'role="alertdialog"' in page
    assert "Merge “Jane Doe” and “Jane Doe”?" in page
    assert compare_url(older, newer) in page
    assert not MergeRecord.objects.for_org(org).exists()


@pytest.mark.parametrize("count", [1, 3])
def test_bulk_merge_needs_exactly_two(org, owner, client_as, count):
    contacts = [person(org, f"P{i}", "Test") for i in range(count)]
    response = client_as(owner, htmx=True).post(
        reverse("contacts:merge_selected"), {"ids": [str(c.public_id) for c in contacts]}
    )
    assert f"Tick exactly two contacts to merge them ({count} are ticked)." in text_of(response)


def test_bulk_bar_offers_merge_to_members_who_may_merge(org, members, client_as):
    url = reverse("contacts:bulk_actions")
    merge = reverse("contacts:merge_selected")
    assert merge in text_of(client_as(members["admin"], htmx=True).get(url))
    assert merge not in text_of(client_as(members["support"], htmx=True).get(url))


# Rights, scope and tenancy ---------------------------------------------------------------


def test_viewer_cannot_open_data_health(org, members, client_as, janes):
    older, newer = janes
    client = client_as(members["viewer"])
    assert client.get(DATA_HEALTH).status_code == 403
    assert client.get(compare_url(older, newer)).status_code == 403
    assert client.post(dismiss_url(older, newer)).status_code == 403


def test_member_without_delete_sees_compare_but_cannot_merge(org, members, client_as, janes):
    older, newer = janes
    client = client_as(members["support"])
    page = text_of(client.get(compare_url(older, newer)))
    assert "Analyst" in page
    assert "Merge into" not in page
    assert "You may not delete Jane Doe." in page

    assert client.post(compare_url(older, newer), {}).status_code == 403
    newer.refresh_from_db()
    assert not newer.is_archived
    assert not MergeRecord.objects.for_org(org).exists()


def test_member_without_delete_cannot_undo(org, owner, members, client_as, janes):
    older, newer = janes
    client_as(owner).post(compare_url(older, newer), {})
    record = MergeRecord.objects.for_org(org).get()
    response = client_as(members["support"]).post(undo_url(record))
    assert response.status_code == 409
    assert "Undoing a merge needs the right" in text_of(response)
    record.refresh_from_db()
    assert record.state == MergeRecord.State.MERGED


def test_own_scope_rep_sees_only_pairs_of_their_own_contacts(org, owner, members, client_as):
    rep = members["team"]
    mine_a = person(org, "Mine", "One", owner=rep.user)
    mine_b = person(org, "Mine", "Two", owner=rep.user)
    theirs = person(org, "Theirs", "Three", owner=owner.user)
    own_pair = make_pair(org, mine_a, mine_b)
    mixed_pair = make_pair(org, mine_a, theirs)
    client = client_as(rep)

    page = text_of(client.get(DATA_HEALTH))
    assert str(own_pair.public_id) in page
    assert str(mixed_pair.public_id) not in page
    assert "Theirs" not in page

    assert client.get(compare_url(mine_a, mine_b)).status_code == 200
    assert client.get(compare_url(mine_a, theirs)).status_code == 404
    assert client.get(compare_url(theirs, mine_a)).status_code == 404
    assert client.post(dismiss_url(mine_a, theirs)).status_code == 404
    assert client.get(reverse("contacts:merge_pick", args=[theirs.public_id])).status_code == 404
    found = text_of(
        client.get(reverse("contacts:merge_pick", args=[mine_a.public_id]), {"q": "Theirs"})
    )
    assert compare_url(mine_a, theirs) not in found
    assert "No other contact matches" in found
    assert DuplicateDismissal.objects.for_org(org).count() == 0


def test_own_scope_rep_cannot_undo_a_merge_of_contacts_they_cannot_see(
    org, owner, members, client_as, janes
):
    older, newer = janes
    client_as(owner).post(compare_url(older, newer), {})
    record = MergeRecord.objects.for_org(org).get()
    rep = client_as(members["team"])
    assert rep.post(undo_url(record)).status_code == 404
    assert rep.get(reverse("contacts:merge_banner", args=[older.public_id])).status_code == 404


def test_another_org_gets_404_everywhere(org, owner, other_org, client_as, janes):
    older, newer = janes
    pair = make_pair(org, older, newer)
    client_as(owner).post(compare_url(older, newer), {})
    record = MergeRecord.objects.for_org(org).get()
    stranger = client_as(member(other_org, "owner"))

    page = text_of(stranger.get(DATA_HEALTH))
    assert "No duplicates found" in page and str(pair.public_id) not in page
    assert stranger.get(compare_url(older, newer)).status_code == 404
    assert stranger.post(compare_url(older, newer), {}).status_code == 404
    assert stranger.post(dismiss_url(older, newer)).status_code == 404
    assert stranger.post(undo_url(record)).status_code == 404
    assert stranger.get(reverse("contacts:merge_pick", args=[older.public_id])).status_code == 404
    assert stranger.get(reverse("contacts:merge_banner", args=[older.public_id])).status_code == 404
    bulk = stranger.post(
        reverse("contacts:merge_selected"), {"ids": [str(older.public_id), str(newer.public_id)]}
    )
    assert "gone or out of your reach" in text_of(bulk)
    record.refresh_from_db()
    assert record.state == MergeRecord.State.MERGED


NAUGHTY = [
    '<script>alert("x")</script>',
    '"><img src=x onerror=alert(1)>',
    "Robert'); DROP TABLE contacts;--",
]


@pytest.mark.parametrize("name", NAUGHTY)
def test_naughty_names_are_escaped_on_every_page(org, owner, client_as, name):
    first = person(org, name, "Smith", job_title=name, email="n1@naughty.example")
    second = person(org, name, "Smith", job_title="Other", email="n2@naughty.example")
    make_pair(org, first, second, reasons=[name])
    client = client_as(owner)
    escaped = html.escape(name)

    pages = [
        client.get(DATA_HEALTH),
        client.get(compare_url(first, second)),
        client.get(reverse("contacts:merge_pick", args=[first.public_id]), {"q": name}),
        client_as(owner, htmx=True).post(
            reverse("contacts:merge_selected"),
            {"ids": [str(first.public_id), str(second.public_id)]},
        ),
    ]
    client.post(compare_url(first, second), {})
    pages.append(client.get(reverse("contacts:merge_banner", args=[first.public_id])))
    for response in pages:
        body = text_of(response)
        assert response.status_code == 200
        if "<" in name or '"' in name:
            assert name not in body
        assert escaped in body or escaped.replace("&#x27;", "&#39;") in body


# Scan now ----------------------------------------------------------------------------------


def test_scan_now_runs_a_full_scan_job_and_the_page_follows_it(org, owner, client_as):
    person(org, "Katherine", "Miller", email="kate.miller@example.com", phone="+14155550101")
    person(org, "Kate", "Miller", email="kate.miller+crm@example.com", phone="+14155550101")
    person(org, "Zoltan", "Quist", email="zq@elsewhere.example", phone="+14155559999")
    client = client_as(owner)

    response = client.post(reverse("contacts:data_health_scan"), follow=True)

    assert response.redirect_chain[-1][0] == DATA_HEALTH
    job = BackgroundJob.objects.for_org(org).get(kind="contacts.dedup_scan")
    assert job.created_by == owner.user and job.params["full"] is True
    page = text_of(response)
    assert f'id="job-{job.public_id}"' in page and "Full duplicate scan" in page
    assert "Scan now" not in page  # one scan at a time
    # A second press follows the same scan.
    client.post(reverse("contacts:data_health_scan"))
    assert BackgroundJob.objects.for_org(org).filter(kind="contacts.dedup_scan").count() == 1

    jobs.run_inline(job.kind, org.id, job.pk)

    page = text_of(client.get(DATA_HEALTH))
    pair = DuplicatePair.objects.for_org(org).get()
    assert str(pair.public_id) in page
    assert f'id="job-{job.public_id}"' not in page
    assert DedupSettings.objects.for_org(org).get().last_scan_at is not None


def test_the_scan_progress_shows_only_to_members_who_may_follow_it(org, owner, members, client_as):
    client_as(owner).post(reverse("contacts:data_health_scan"))
    job = BackgroundJob.objects.for_org(org).get(kind="contacts.dedup_scan")
    rep_page = text_of(client_as(members["team"]).get(DATA_HEALTH))
    assert f'id="job-{job.public_id}"' not in rep_page


def test_viewer_cannot_start_a_scan(org, members, client_as):
    assert (
        client_as(members["viewer"]).post(reverse("contacts:data_health_scan")).status_code == 403
    )

import pytest
from django.core import mail
from django.urls import reverse

from crm.models import Notification
from crm.services.notifications import notify

from ..factories import member

pytestmark = pytest.mark.django_db


def test_notify_creates_the_notification_and_emails_after_commit(
    org, django_capture_on_commit_callbacks
):
    m = member(org, "team")
    with django_capture_on_commit_callbacks(execute=True):
        note = notify(
            org=org,
            user=m.user,
            title="Import finished",
            body="3 created",
            url="/x",
            email=True,
            absolute_url="http://crm.test/x",
        )
    assert Notification.objects.get(pk=note.pk).title == "Import finished"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [m.user.email]
    assert "3 created" in mail.outbox[0].body and "http://crm.test/x" in mail.outbox[0].body


def test_bell_shows_the_unread_count_of_this_member_in_this_org(org, other_org, client_as):
    me = member(org, "team")
    someone = member(org, "team")
    notify(org=org, user=me.user, title="Mine 1")
    notify(org=org, user=me.user, title="Mine 2")
    notify(org=org, user=someone.user, title="Theirs")
    elsewhere = member(other_org, "team", user=me.user)
    notify(org=other_org, user=elsewhere.user, title="Other org")
    html = client_as(me).get(reverse("crm:dashboard")).content.decode()
    assert 'aria-label="Notifications, 2 unread"' in html


def test_list_shows_only_my_notifications_and_marking_read_clears_them(org, client_as):
    me = member(org, "team")
    someone = member(org, "team")
    notify(org=org, user=me.user, title="Mine")
    theirs = notify(org=org, user=someone.user, title="Theirs")
    client = client_as(me)
    html = client.get(reverse("crm:notifications")).content.decode()
    assert "Mine" in html and "Theirs" not in html
    # Another member's id is not mine to mark.
    client.post(reverse("crm:notifications_read"), {"id": str(theirs.public_id)})
    theirs.refresh_from_db()
    assert theirs.read_at is None
    client.post(reverse("crm:notifications_read"))
    assert not Notification.objects.filter(user=me.user, read_at__isnull=True).exists()
    assert 'aria-label="Notifications"' in client.get(reverse("crm:dashboard")).content.decode()


def test_empty_state_when_there_is_nothing(org, client_as):
    html = client_as(member(org, "viewer")).get(reverse("crm:notifications")).content.decode()
    assert "No notifications" in html

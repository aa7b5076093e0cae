"""Tell a member something happened: an in-app notification, and an email if asked."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from ..models import Notification


def notify(
    *,
    org,
    user,
    title: str,
    body: str = "",
    url: str = "",
    level: str = Notification.Level.INFO,
    email: bool = False,
    absolute_url: str = "",
) -> Notification:
    note = Notification.objects.for_org(org).create(
        org=org, user=user, title=title[:200], body=body, url=url, level=level
    )
    if email and user.email:
        text = "\n\n".join(part for part in (body, absolute_url) if part)

        def send():
            send_mail(
                subject=f"[{org.name}] {title}",
                message=text or title,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[user.email],
                fail_silently=True,
            )

        transaction.on_commit(send)
    return note


def mark_read(*, org, user, ids=None) -> int:
    from django.utils import timezone

    qs = Notification.objects.for_org(org).filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(public_id__in=ids)
    return qs.update(read_at=timezone.now())

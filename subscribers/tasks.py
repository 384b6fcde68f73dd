"""Celery tasks of the subscribers app (thin wrappers around subscribers.services and emails)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from subscribers import emails, services
from subscribers.liked_input import LikedInput
from subscribers.models import Subscriber


@shared_task(name="subscribers.subscribe")
def subscribe(email: str, preferences: dict, liked: dict | None = None) -> str:
    return services.subscribe(
        email, services.Preferences.from_data(preferences), LikedInput.from_data(liked) if liked else None
    )


@shared_task(name="subscribers.request_manage_link")
def request_manage_link(email: str) -> bool:
    return services.request_manage_link(email)


@shared_task(name="subscribers.send_confirmation")
def send_confirmation(subscriber_id: int) -> None:
    # Re-checked here: the address may have confirmed or left since the email was queued.
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status=Subscriber.Status.PENDING).first()
    if subscriber is not None:
        emails.confirmation_message(subscriber).send()


@shared_task(name="subscribers.send_manage_link")
def send_manage_link(subscriber_id: int) -> None:
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is not None:
        emails.manage_link_message(subscriber).send()


@shared_task(name="subscribers.purge_pending")
def purge_pending() -> int:
    return services.purge_pending(timedelta(days=settings.PENDING_PURGE_DAYS))

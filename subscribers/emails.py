"""The emails to a subscriber: their personal links, and the one builder every email goes through.

Every message to a subscriber carries their manage link and the RFC 8058 one-click unsubscribe
headers; templates, inlining and headers come from mail/rendering.py.
"""

from email.utils import formatdate, parseaddr
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse

from mail.dkim import SignedEmailMultiAlternatives
from mail.rendering import RenderEmail, absolute, list_headers, new_message_id, render_email, token_url
from subscribers.models import Subscriber
from subscribers.tokens import CONFIRM_LINK_LIFETIME, make_token


@lru_cache(maxsize=8)
def _bare_address(address: str) -> str:
    return parseaddr(address)[1]


def personal_links(subscriber: Subscriber) -> dict[str, str]:
    unsubscribe_token = make_token(subscriber, "unsubscribe")
    from_address = _bare_address(settings.DEFAULT_FROM_EMAIL)
    return {
        "manage_url": token_url("subscribers:manage", make_token(subscriber, "manage")),
        "unsubscribe_url": token_url("subscribers:unsubscribe", unsubscribe_token),
        # The token in the subject is what `manage.py mailunsubscribe` reads from the reply.
        "unsubscribe_mailto": f"mailto:{from_address}?subject={quote(f'unsubscribe {unsubscribe_token}')}",
    }


def build_message(
    name: str,
    subscriber: Subscriber,
    context: dict,
    *,
    message_id: str | None = None,
    connection: BaseEmailBackend | None = None,
    render: RenderEmail = render_email,
) -> EmailMultiAlternatives:
    """A ready-to-send message: rendered templates, personal links and list headers."""
    links = personal_links(subscriber)
    rendered = render(name, {**context, **links, "subscriber": subscriber})
    headers = {
        **list_headers(links, name),
        "Message-ID": message_id or new_message_id(),
        "Date": formatdate(usegmt=True),
    }
    message = SignedEmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        headers=headers,
        connection=connection,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def confirmation_message(subscriber: Subscriber) -> EmailMultiAlternatives:
    confirm_url = absolute(reverse("subscribers:confirm", args=[make_token(subscriber, "confirm")]))
    return build_message("confirm", subscriber, {"confirm_url": confirm_url, "valid_days": CONFIRM_LINK_LIFETIME.days})


def manage_link_message(subscriber: Subscriber) -> EmailMultiAlternatives:
    subscribed = subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED)
    return build_message("manage_link", subscriber, {"subscribed": subscribed})

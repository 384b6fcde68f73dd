"""Every email Paperboy sends is built here.

One name means one set of templates: `emails/<name>-subject.txt`, `emails/<name>.txt` and
`emails/<name>.html`. The HTML gets its CSS inlined. Every message to a subscriber carries their
manage link and the RFC 8058 one-click unsubscribe headers.
"""

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache
from urllib.parse import quote, urlsplit

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse

from mail.dkim import SignedEmailMultiAlternatives
from subscribers.models import Subscriber
from subscribers.tokens import LIFETIMES, make_token

_inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def absolute(path: str) -> str:
    return settings.SITE_URL + path


def site_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


@lru_cache(maxsize=64)
def _around_token(route: str, rest: tuple, site_url: str, script_prefix: str) -> tuple[str, str]:
    head, _, tail = (site_url + reverse(route, args=["TOKEN", *rest])).partition("TOKEN")
    return head, tail


def token_url(route: str, token: str, *rest) -> str:
    """`absolute(reverse(route, args=[token, *rest]))`, reversing the route once per process.

    Every email carries several such links and `reverse` is slow; the cache is keyed by SITE_URL
    and the script prefix, so a changed setting never gives a stale link.
    """
    head, tail = _around_token(route, rest, settings.SITE_URL, get_script_prefix())
    return f"{head}{token}{tail}"


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


def inlined_html(name: str, context: dict) -> str:
    """`emails/<name>.html` rendered, with its CSS inlined."""
    return _inliner.inline(render_to_string(f"emails/{name}.html", context))


def render_email(
    name: str,
    context: dict,
    render_html: Callable[[dict], str] | None = None,
    render_text: Callable[[dict], str] | None = None,
) -> RenderedEmail:
    """`render_html` / `render_text`, when given, must return exactly what the templates would, faster."""
    context = {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_text(context) if render_text else render_to_string(f"emails/{name}.txt", context)
    html = render_html(context) if render_html else inlined_html(name, context)
    return RenderedEmail(subject=subject, text=text, html=html)


def list_headers(links: dict[str, str], list_name: str = "digest") -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{links['unsubscribe_url']}>, <{links['unsubscribe_mailto']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{settings.SITE_NAME} {list_name} <{list_name}.{site_domain()}>",
    }


def build_message(
    name: str,
    subscriber: Subscriber,
    context: dict,
    *,
    message_id: str | None = None,
    connection=None,
    render_html: Callable[[dict], str] | None = None,
    render_text: Callable[[dict], str] | None = None,
) -> EmailMultiAlternatives:
    """A ready-to-send message: rendered templates, personal links and list headers."""
    links = personal_links(subscriber)
    rendered = render_email(name, {**context, **links, "subscriber": subscriber}, render_html, render_text)
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


def new_message_id() -> str:
    return make_msgid(domain=site_domain())


def confirmation_message(subscriber: Subscriber) -> EmailMultiAlternatives:
    confirm_url = absolute(reverse("subscribers:confirm", args=[make_token(subscriber, "confirm")]))
    return build_message("confirm", subscriber, {"confirm_url": confirm_url, "valid_days": LIFETIMES["confirm"].days})


def manage_link_message(subscriber: Subscriber) -> EmailMultiAlternatives:
    subscribed = subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED)
    return build_message("manage_link", subscriber, {"subscribed": subscribed})

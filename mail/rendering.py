"""What every email is rendered with: its templates, CSS inlining, links, list headers, Message-ID.

One name means one set of templates: `emails/<name>-subject.txt`, `emails/<name>.txt` and
`emails/<name>.html`. The HTML gets its CSS inlined. Links are absolute (SITE_URL), and a list
message carries the RFC 2369 and RFC 8058 headers built from the links it is given.
"""

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import make_msgid
from functools import lru_cache
from urllib.parse import urlsplit

import css_inline
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse

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


def token_url(route: str, token: str, *rest: object) -> str:
    """`absolute(reverse(route, args=[token, *rest]))`, reversing the route once per process.

    Every email carries several such links and `reverse` is slow; the cache is keyed by SITE_URL
    and the script prefix, so a changed setting never gives a stale link.
    """
    head, tail = _around_token(route, rest, settings.SITE_URL, get_script_prefix())
    return f"{head}{token}{tail}"


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


def new_message_id() -> str:
    return make_msgid(domain=site_domain())

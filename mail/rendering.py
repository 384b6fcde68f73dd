"""What every email is rendered with: its templates, CSS inlining, links, list headers, Message-ID.

One name means one set of templates: `emails/<name>-subject.txt`, `emails/<name>.txt` and
`emails/<name>.html`. The HTML gets its CSS inlined. Links are absolute (SITE_URL), and a list
message carries the RFC 2369 and RFC 8058 headers built from the links it is given.

Most emails are Django templates (`templates/emails/`), inlined as each is rendered. The digest,
sent by the hundred thousand, is a set of Jinja2 templates (`templates/jinja2/emails/`) whose HTML
had its CSS inlined once, when the process first loads it (`render_inlined_email`); the rules
such a template keeps are written at the top of `templates/jinja2/emails/digest.html`.
"""

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from email.utils import make_msgid
from functools import lru_cache
from urllib.parse import urlsplit

import css_inline
import jinja2
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


def inline_css(html: str) -> str:
    """The page with its <style> rules written into style attributes too (the <style> is kept)."""
    return _inliner.inline(html)


def inlined_html(name: str, context: dict) -> str:
    """`emails/<name>.html` rendered, with its CSS inlined."""
    return inline_css(render_to_string(f"emails/{name}.html", context))


def _site(context: dict) -> dict:
    return {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **context}


def render_email(name: str, context: dict) -> RenderedEmail:
    """The Django templates `emails/<name>*`, the HTML inlined as it is rendered."""
    context = _site(context)
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_to_string(f"emails/{name}.txt", context)
    return RenderedEmail(subject=subject, text=text, html=inlined_html(name, context))


RenderEmail = Callable[[str, dict], RenderedEmail]

# Jinja2 syntax in a template's source: tags and expressions, comments.
_JINJA = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
# A placeholder as written, and as the inliner writes it back inside <title> (text there is escaped).
_PLACEHOLDER = re.compile(r"(?:<!--|&lt;!--)jinja(\d+)(?:-->|--&gt;)")


class TemplateInliningError(jinja2.TemplateError):
    """The inliner would have changed a template's tags or expressions: the template breaks a rule."""


def inline_template_css(source: str, name: str = "") -> str:
    """A Jinja2 HTML template's source with its <style> rules written into style attributes.

    The inliner parses HTML, which would move text standing between table rows out of its table:
    each tag or expression outside an element's brackets travels as an HTML comment, which may
    stand anywhere, and Jinja2 comments are dropped first. An expression inside an attribute
    value stays as it is; should the inliner change one (it escapes `"` and `&` there), the
    template is refused.
    """
    source = _JINJA_COMMENT.sub("", source)
    found = [
        (match, source.rfind("<", 0, match.start()) > source.rfind(">", 0, match.start()))
        for match in _JINJA.finditer(source)
    ]
    moved = [match.group() for match, in_element in found if not in_element]
    pieces: list[str] = []
    last = 0
    for match, in_element in found:
        if not in_element:
            pieces += [source[last : match.start()], f"<!--jinja{len(pieces) // 2}-->"]
            last = match.end()
    protected = "".join(pieces) + source[last:]
    inlined = inline_css(protected)
    numbers = [int(number) for number in _PLACEHOLDER.findall(inlined)]
    restored = _PLACEHOLDER.sub(lambda placeholder: moved[int(placeholder.group(1))], inlined)
    if numbers != list(range(len(moved))) or _JINJA.findall(restored) != _JINJA.findall(source):
        raise TemplateInliningError(f"{name}: CSS inlining would change a tag or an expression")
    return restored


class _InliningLoader(jinja2.FileSystemLoader):
    """Loads `.html` templates with their CSS already inlined (once: the environment keeps them)."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if template.endswith(".html"):
            source = inline_template_css(source, template)
        return source, filename, uptodate


FRAGMENT_CACHE_SIZE = 10_000  # a digest run's cards, HTML and text
_fragments: dict[tuple[Hashable, ...], str] = {}


def once(*key: Hashable, caller: Callable[[], str]) -> str:
    """`{% call once("name", value) %}...{% endcall %}`: the block rendered once per process for
    its key, then reused.

    For what is the same in every message of a run (a digest's paper cards, a hundred thousand
    times over the same few thousand papers). The key names the block and holds every value the
    block reads; a frozen dataclass compares by all its fields, so a changed value is a new key.
    Bounded: emptied when full.
    """
    found = _fragments.get(key)
    if found is None:
        if len(_fragments) >= FRAGMENT_CACHE_SIZE:
            _fragments.clear()
        found = _fragments[key] = caller()
    return found


def clear_fragments() -> None:
    _fragments.clear()


@lru_cache(maxsize=1)
def jinja_environment() -> jinja2.Environment:
    """HTML escaped (as Django's templates escape it), text not; an undefined name is an error."""
    environment = jinja2.Environment(
        loader=_InliningLoader(settings.BASE_DIR / "templates" / "jinja2"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    environment.globals["once"] = once
    return environment


def render_inlined_email(name: str, context: dict) -> RenderedEmail:
    """The Jinja2 templates `emails/<name>*` (`templates/jinja2/`), the HTML's CSS inlined beforehand."""
    context = _site(context)
    environment = jinja_environment()
    subject = " ".join(environment.get_template(f"emails/{name}-subject.txt").render(context).split())
    text = environment.get_template(f"emails/{name}.txt").render(context)
    html = environment.get_template(f"emails/{name}.html").render(context)
    return RenderedEmail(subject=subject, text=text, html=html)


def list_headers(links: dict[str, str], list_name: str = "digest") -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{links['unsubscribe_url']}>, <{links['unsubscribe_mailto']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{settings.SITE_NAME} {list_name} <{list_name}.{site_domain()}>",
    }


def new_message_id() -> str:
    return make_msgid(domain=site_domain())

"""The digest's Jinja2 templates over many card shapes: any paper text, any subset of fields.

The reference is the obvious render: the same templates as written, rendered, then the whole page
inlined (what `render_email` does for every other email). The production render inlined the CSS
into the template once. Both are compared as parsed HTML (the same elements, attributes and text,
in order): the two serialisers spell some entities differently (`&#34;`, `&quot;`).
"""

import html
import textwrap
from datetime import UTC
from html.parser import HTMLParser

import jinja2
import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from digest.delivery.digest_email import build_digest_context, build_digest_message
from digest.delivery.picks import PaperRow, Pick
from mail.rendering import inline_css, render_inlined_email
from subscribers.emails import personal_links
from tests.support.digest_samples import make_subscriber

pytestmark = pytest.mark.django_db

# Text as feeds send it, markup, entities and quotes included; parsers turn CR and NUL into LF and U+FFFD.
ANY_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\x00"), max_size=60)
MARKUP = st.sampled_from(
    ["<b>x</b> & \"q\" 's'", "&amp; &lt;", "\xa0 ünï", "{{ x }}", "<img src=x onerror=alert(1)>", "</td>"]
)
TEXT = st.one_of(ANY_TEXT, MARKUP, st.builds("{} {} {}".format, ANY_TEXT, MARKUP, ANY_TEXT))
SOME_TEXT = st.one_of(st.just(""), TEXT)
URLS = st.one_of(st.just(""), st.builds(lambda tail: f"https://arxiv.org/abs/{tail}", TEXT))


@st.composite
def papers(draw, number: int) -> PaperRow:
    return PaperRow(
        id=number,
        title=draw(TEXT.filter(str.strip)),
        abstract=draw(SOME_TEXT),
        authors=tuple(draw(st.lists(TEXT.map(lambda name: " ".join(name.split())).filter(bool), max_size=6))),
        categories=tuple(draw(st.lists(TEXT, max_size=3))),
        primary_category=draw(SOME_TEXT),
        upvotes=draw(st.integers(0, 3000)),
        url=draw(URLS),
        pdf_url=draw(URLS),
        code_url=draw(URLS),
        arxiv_id=draw(st.one_of(st.none(), st.just("2403.10001"))),
        published=draw(st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)))),
        num_comments=draw(st.one_of(st.none(), st.integers(0, 3000))),
        organization=draw(SOME_TEXT),
    )


@st.composite
def picks(draw) -> list[Pick]:
    count = draw(st.integers(0, 4))
    return [Pick(number, number, draw(papers(number)), 1.0, draw(TEXT)) for number in range(1, count + 1)]


class Events(HTMLParser):
    """A page as the sequence a browser builds it from: elements, their attributes, and text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.events.append(("start", tag, sorted((name, value or "") for name, value in attrs)))

    def handle_endtag(self, tag):
        self.events.append(("end", tag))

    def handle_data(self, data):
        if self.events and self.events[-1][0] == "text":
            self.events[-1] = ("text", self.events[-1][1] + data)
        else:
            self.events.append(("text", data))


def plain_render(context: dict) -> tuple[str, str]:
    """The templates as written: rendered (no block kept from an earlier message), then the whole
    HTML page inlined."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(settings.BASE_DIR / "templates" / "jinja2"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals["once"] = lambda *key, caller: caller()  # every block rendered afresh
    context = {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **context}
    text = environment.get_template("emails/digest.txt").render(context)
    return text, inline_css(environment.get_template("emails/digest.html").render(context))


@pytest.fixture
def subscriber():
    return make_subscriber()


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shown=picks(), more=st.integers(0, 3), email_local=st.from_regex(r"[a-z0-9.'&+]{1,12}", fullmatch=True))
def test_the_html_is_the_templates_rendered_then_inlined_and_every_value_reads_back_as_text(
    subscriber, shown, more, email_local
):
    subscriber.email = f"{email_local}@example.org"
    context = {**build_digest_context(subscriber, shown, more), **personal_links(subscriber), "subscriber": subscriber}
    rendered = render_inlined_email("digest", context)
    text, reference = plain_render(context)

    page = rendered.html
    assert Events(page).events == Events(reference).events
    assert rendered.text == text
    texts = [event[1] for event in Events(page).events if event[0] == "text"]
    links = {
        value for event in Events(page).events if event[0] == "start" for name, value in event[2] if name == "href"
    }
    for item in context["items"]:
        assert any(item.title in piece for piece in texts)
        assert any(item.reason in piece for piece in texts)
        for url in (item.url, item.pdf_url, item.code_url):
            assert not url or url in links
    # Markup in any value stays text: the page has only the elements the template writes.
    tags = {event[1] for event in Events(page).events if event[0] == "start"}
    assert tags <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "span",
        "table",
        "tbody",
        "tr",
        "td",
        "a",
        "div",
        "p",
        "br",
    }


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shown=picks())
def test_the_text_part_keeps_every_value_as_written(subscriber, shown):
    body = build_digest_message(subscriber, shown, 0).body

    for pick in shown:
        assert " ".join(pick.paper.title.split()) in body
        assert pick.reason in body
    assert "&lt;" not in body or any("&lt;" in repr(pick) for pick in shown)
    assert html.unescape(body) == body or "&" in repr(shown)


def test_an_excerpt_is_wrapped_and_indented_in_the_text_part(subscriber):
    paper = PaperRow(1, "T", "word " * 100, (), (), "", 0, "https://arxiv.org/abs/1", "", "", None, None)

    body = build_digest_message(subscriber, [Pick(1, 1, paper, 1.0, "r")], 0).body

    wrapped = textwrap.fill(("word " * 64).strip() + "…", 75, initial_indent="   ", subsequent_indent="   ")
    assert wrapped in body

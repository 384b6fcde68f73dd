"""No URL answers 500, whatever is put into it.

The test walks every URL pattern the site routes (django.urls resolvers, so a new route is walked
without anyone adding it here), puts hostile values into each converter or regex group in turn
(huge numbers, impossible dates, 10 KB strings, unicode, NUL, path traversal, tokens that look
signed, tokens signed with our key around hostile payloads) and sends each URL by GET and POST,
as a stranger and as a logged-in operator. An unhandled exception would be a 500.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from digest.models import Delivery, Paper
from subscribers.models import Subscriber
from subscribers.tokens import LIFETIMES

pytestmark = pytest.mark.django_db

HOSTILE = [
    "99999999999999999999999999999999",
    "9223372036854775808",
    "2147483648",
    "-1",
    "0",
    "00000000001",
    "9999-12-31",
    "0000-00-00",
    "0001-01-01",
    "2026-02-30",
    "2026-13-01",
    "x" * 10240,
    "jörg",
    "ℌ𝔢𝔩𝔩𝔬",
    "%F0%9F%92%A9",
    "%FF%FE",
    "\u202e\u200b",
    "%00",
    "a%00b",
    "..",
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "../../etc/passwd",
    "%5C..%5C",
    "~root",
    "<script>alert(1)</script>",
    "' OR '1'='1",
    "{{7*7}}",
    "%25s%25n",
    "eyJzIjoxLCJmIjoiIn0:1uQ3ZB:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ".eJyrVipWsjI0NTQ1NjC1NDQyMjQxNzAyNDI1NjE2MTU0MzM1NDQwNDM0MjE1NjAxMjIxMjMxMjI0:1uQ3ZB:sig",
    "a:b:c:d:e:f",
    ":",
    "::::",
]
# Parameters the pages read, with hostile values.
QUERY = "?page=99999999999999999999&q=%00%27&o=-999.x&done=%00&sent=x&p=-1&e=1&all=&_changelist_filters=%00"


def signed_hostile_tokens(subscriber: Subscriber, delivery: Delivery, paper: Paper) -> list[str]:
    """Tokens with a good signature (our key and salt) around payloads we never make."""
    payloads = [
        {"s": 10**30},
        {"s": -1},
        {"s": "1"},
        {"s": True},
        {"s": None},
        [],
        "s",
        10**30,
        {"u": "0" * 32},
        {"u": 12},
        {"u": ["x"]},
        {"u": "x" * 5000},
        {"s": subscriber.pk, "f": 12},
        {"s": subscriber.pk, "x": {"d": 10**30, "p": 10**30, "digest": 10**30}},
        {"s": subscriber.pk, "x": {"d": "more", "p": str(paper.pk), "digest": str(delivery.pk)}},
        {"s": subscriber.pk, "x": {"d": delivery.pk, "p": paper.pk, "digest": [delivery.pk]}},
        {"s": subscriber.pk, "x": [1, 2]},
    ]
    return [
        signing.dumps(payload, salt=f"paperboy.tokens.{purpose}", compress=True)
        for purpose in LIFETIMES
        for payload in payloads
    ]


@dataclass(frozen=True)
class Slot:
    """One converter or regex group of a URL pattern."""

    kind: str  # a path converter's name ("int", "str", "path"...) or "re:<the group's regex>"
    name: str = ""

    def usual(self) -> str:
        """A value the pattern accepts, for the slots not under attack."""
        if not self.kind.startswith("re:"):
            return "1" if self.kind == "int" else "x"
        regex = self.kind[3:]
        literals = regex.split("|")
        for candidate in ["1", "x", "2026-03-17", literals[0], ""]:
            if re.fullmatch(regex, candidate):
                return candidate
        raise AssertionError(f"no usual value for the group {regex!r}")


GROUP = re.compile(r"\((?:\?P<\w+>)?((?:[^()\\]|\\.)*)\)\??")
CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _level(pattern) -> tuple[str, list[Slot]]:
    """A pattern's text with `{}` where each slot goes."""
    slots: list[Slot] = []
    if isinstance(pattern, RoutePattern):

        def route_slot(found):
            slots.append(Slot(found.group(1) or "str", found.group(2)))
            return "{}"

        return CONVERTER.sub(route_slot, str(pattern)), slots
    assert isinstance(pattern, RegexPattern), pattern

    def regex_slot(found):
        slots.append(Slot("re:" + found.group(1)))
        return "{}"

    text = GROUP.sub(regex_slot, str(pattern)).removeprefix("^").removesuffix("$")
    return re.sub(r"\\(.)", r"\1", text), slots


def url_templates(
    resolver: URLResolver | None = None, prefix: str = "", slots: tuple = ()
) -> Iterator[tuple[str, tuple]]:
    for pattern in (resolver or get_resolver()).url_patterns:
        text, found = _level(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from url_templates(pattern, prefix + text, slots + tuple(found))
        elif isinstance(pattern, URLPattern):
            yield prefix + text, slots + tuple(found)


def usual_urls() -> list[str]:
    return sorted({"/" + template.format(*(slot.usual() for slot in slots)) for template, slots in url_templates()})


def hostile_urls(tokens: list[str]) -> list[str]:
    """Each slot of each pattern in turn given each hostile value (and a `token` slot each of
    `tokens`), the other slots their usual values."""
    urls = set(usual_urls())
    for template, slots in url_templates():
        usual = [slot.usual() for slot in slots]
        for position, slot in enumerate(slots):
            for value in HOSTILE + (tokens if slot.name == "token" else []):
                values = list(usual)
                values[position] = quote(value, safe="%/")
                urls.add("/" + template.format(*values))
    return sorted(urls)


@pytest.fixture
def rows():
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Subscriber.Status.ACTIVE, keywords="x")
    paper = Paper.objects.create(guid="p1", title="A paper", abstract="About things.")
    delivery = Delivery.objects.create(subscriber=subscriber, period="2026-03-17", scheduled_for="2026-03-17T08:00Z")
    return subscriber, delivery, paper


def test_the_walk_covers_every_kind_of_route():
    templates = dict(url_templates())
    assert "archive/{}/" in templates and "manage/{}/" in templates and "feedback/{}/{}/{}/" in templates
    assert "admin/subscribers/subscriber/{}/preview/" in templates
    assert len(templates) > 100


def test_the_archive_of_9999_12_31_is_not_found_rather_than_an_error(client):
    assert Client(raise_request_exception=False).get("/archive/9999-12-31/").status_code == 404
    assert client.get("/archive/0001-01-01/").status_code == 404


def walk(client: Client, urls: list[str], skip: set[str] = frozenset()) -> list[str]:
    """GET and POST each URL, and GET each usual one with hostile query parameters: what answered 500."""
    errors = []
    requests = [(method, url) for url in urls if url not in skip for method in ("get", "post")]
    requests += [("get", url + QUERY) for url in usual_urls() if url in urls and url not in skip]
    for method, url in requests:
        if getattr(client, method)(url).status_code == 500:
            errors.append(f"{method.upper()} {url[:150]}")
    return errors


@pytest.mark.slow
def test_no_url_answers_500_to_a_stranger(rows, settings):
    settings.ANYMAIL = {}
    urls = hostile_urls(signed_hostile_tokens(*rows))
    assert walk(Client(raise_request_exception=False), urls) == []


@pytest.mark.slow
def test_no_url_answers_500_to_a_logged_in_operator(rows):
    operator = User.objects.create_superuser("operator", "op@example.org", "pw")
    client = Client(raise_request_exception=False)
    client.force_login(operator)
    urls = [url for url in hostile_urls([]) if url.startswith("/admin/")]
    assert walk(client, urls, skip={"/admin/logout/"}) == []
    assert client.get("/admin/").status_code == 200, "still logged in: the walk reached every page"


def test_webhooks_with_a_secret_refuse_a_stranger_with_401_not_500(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:secret"}
    client = Client(raise_request_exception=False)
    urls = [url for url in usual_urls() if url.startswith("/anymail/")]
    assert len(urls) > 20
    for url in urls:
        for body in (b"", b"\x00\xff", b"[" * 10000, b'{"RecordType": 5}'):
            assert client.post(url, body, content_type="application/json").status_code == 401, url

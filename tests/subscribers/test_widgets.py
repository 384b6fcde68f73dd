import re

import pytest
from django import forms
from django.test import Client

from subscribers.forms import TIMEZONES, PreferencesForm, SignupForm
from subscribers.models import Subscriber
from subscribers.views import manage_url
from subscribers.widgets import GroupedCheckboxes, StaticChoices, StaticSelect

SCRIPT = '<script>alert("pwned")</script>'
ZONES = [(name, name) for name in TIMEZONES]
HOSTILE = [("a", "Plain"), ('"><b x="', SCRIPT), ("&amp;", "R&D"), (7, "Seven")]


def both_selects(choices, value, attrs=None) -> tuple[str, str]:
    return (
        str(StaticSelect(choices=choices).render("timezone", value, attrs)),
        str(forms.Select(choices=choices).render("timezone", value, attrs)),
    )


@pytest.mark.parametrize("value", ["Europe/Paris", "UTC", None, "", "Mars/Olympus_Mons", ["Asia/Tokyo", "UTC"]])
def test_the_static_select_writes_exactly_what_djangos_select_writes(value):
    attrs = {
        "id": "id_timezone",
        "required": True,
        "aria-invalid": "true",
        "data-browser-timezone": "1",
        "hidden": False,
    }
    ours, django = both_selects(ZONES, value, attrs)
    assert ours == django


def test_the_chosen_zone_is_the_only_one_selected():
    ours, _ = both_selects(ZONES, "America/Argentina/Buenos_Aires")
    assert re.findall(r"<option[^>]* selected>", ours) == ['<option value="America/Argentina/Buenos_Aires" selected>']


def test_values_labels_and_attributes_are_escaped_as_django_escapes_them():
    ours, django = both_selects(HOSTILE, '"><b x="', {"title": SCRIPT})
    assert ours == django
    assert SCRIPT not in ours and "&lt;script&gt;" in ours
    assert '<option value="&quot;&gt;&lt;b x=&quot;" selected>' in ours
    assert '<option value="&amp;amp;">R&amp;D</option>' in ours
    assert both_selects(HOSTILE, 7)[0] == both_selects(HOSTILE, 7)[1]


def test_a_static_select_refuses_option_groups():
    with pytest.raises(ValueError):
        StaticSelect(choices=[("Europe", [("Europe/Paris", "Paris")])]).render("timezone", None)


def test_every_form_shares_the_choices_instead_of_copying_them():
    first, second = SignupForm(), PreferencesForm()
    for name in ("timezone", "categories", "weekday"):
        assert first.fields[name].choices is second.fields[name].choices
        assert isinstance(first.fields[name].choices, StaticChoices)


def test_grouped_checkboxes_check_the_chosen_and_open_their_groups():
    boxes = GroupedCheckboxes(
        {"Physics": {"hep-th": "Theory", "hep-ex": "Experiment"}, "Maths": {"math.AG": "Geometry"}}
    )
    html = str(boxes.render("categories", ["hep-ex"]))

    physics, maths = html.split("</details>")[:2]
    assert '<details class="categories" open>' in physics and '<span class="badge">1 chosen</span>' in physics
    assert '<input type="checkbox" name="categories" value="hep-ex" checked>' in physics
    assert '<input type="checkbox" name="categories" value="hep-th">' in physics
    assert '<details class="categories">' in maths and "badge" not in maths and "checked" not in maths
    assert "<code>hep-ex</code> <span>Experiment</span>" in physics


def test_grouped_checkboxes_escape_names_values_and_descriptions():
    html = str(GroupedCheckboxes({SCRIPT: {'"><i>': SCRIPT}}).render('x"y', ['"><i>']))
    assert SCRIPT not in html and "<i>" not in html
    assert 'name="x&quot;y" value="&quot;&gt;&lt;i&gt;" checked>' in html
    assert "<summary>&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_the_manage_page_shows_the_saved_zone_categories_and_schedule():
    subscriber = Subscriber.objects.create(
        email="ada@example.org",
        status=Subscriber.Status.ACTIVE,
        timezone="Asia/Tokyo",
        categories=["cs.LG", "stat.ML"],
        frequency="weekly",
        weekday=4,
        delivery_hour=7,
    )
    html = Client().get(manage_url(subscriber)).content.decode()

    assert re.findall(r'<option value="[^"]*" selected>', html) == [
        '<option value="4" selected>',
        '<option value="7" selected>',
        '<option value="Asia/Tokyo" selected>',
    ]
    assert re.findall(r'value="([^"]+)" checked>', html) == ["cs.LG", "stat.ML"]
    assert html.count('<details class="categories" open>') == 2
    assert '<label for="id_timezone">Time zone</label>' in html and '<select name="timezone" id="id_timezone">' in html


@pytest.mark.django_db
def test_a_refused_signup_keeps_the_chosen_zone_and_categories_and_shows_the_error(client):
    response = client.post(
        "/",
        {
            "email": "not-an-address",
            "keywords": "nerf",
            "timezone": "Pacific/Chatham",
            "categories": ["q-bio.NC"],
            "frequency": "daily",
            "weekday": "0",
            "delivery_hour": "8",
            "max_papers": "10",
            "category_mode": "boost",
        },
    )
    html = response.content.decode()

    assert response.status_code == 400
    assert '<option value="Pacific/Chatham" selected>' in html and "data-browser-timezone" not in html
    assert re.findall(r'value="([^"]+)" checked>', html) == ["q-bio.NC"]
    assert "Please enter a valid email address" in html[html.index('id="field-email"') :][:900]

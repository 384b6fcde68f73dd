"""Addresses we can deliver to: an internationalised domain is kept in its ASCII (punycode) form,
letters beyond ASCII before the @ are refused everywhere an address comes in, with a clear message."""

from email import message_from_bytes, policy

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import cache
from django.core.management import CommandError, call_command

from subscribers import services
from subscribers.forms import ManageLinkForm, SignupForm
from subscribers.models import Subscriber
from tests.support.signup import form

pytestmark = pytest.mark.django_db

NON_ASCII_LOCAL_PARTS = ["jörg@example.org", "ｊｏｒｇ@example.org", "用户@例子.广告", "zoë+digest@uni.example"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.mark.parametrize("address", NON_ASCII_LOCAL_PARTS)
def test_the_signup_page_refuses_a_non_ascii_local_part_with_a_clear_message(
    client, address, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/", form(email=address))

    html = response.content.decode()
    assert response.status_code == 400
    field = html[html.index('id="field-email"') :][:1200]
    assert "accented or non-Latin letters before the @" in field
    assert not Subscriber.objects.exists() and not mail.outbox


@pytest.mark.parametrize("address", NON_ASCII_LOCAL_PARTS)
def test_the_forms_and_the_service_refuse_it_too(address):
    assert "email" in SignupForm(form(email=address)).errors
    assert "accented" in ManageLinkForm({"email": address}).errors["email"][0]
    with pytest.raises(services.UnsupportedLocalPart):
        services.subscribe(address, services.Preferences(keywords="x"))
    assert not Subscriber.objects.exists()


def test_the_subscribe_command_refuses_it_with_the_same_message():
    with pytest.raises(CommandError, match="accented or non-Latin letters before the @"):
        call_command("subscribe", "jörg@example.org", "--keywords", "x", "--confirmed")
    assert not Subscriber.objects.exists()


def test_the_admin_cannot_add_subscribers_or_change_an_address(client):
    """Operators add people with the `subscribe` command (tested above); the admin form has no
    address field to type one into."""
    client.force_login(User.objects.create_superuser("ops", "ops@example.org", "pw"))
    subscriber = Subscriber.objects.create(email="ada@example.org", status="active", keywords="x")

    assert client.get("/admin/subscribers/subscriber/add/").status_code == 403
    client.post(
        f"/admin/subscribers/subscriber/{subscriber.pk}/change/",
        {
            "email": "jörg@example.org",
            "keywords": "x",
            "category_mode": "boost",
            "frequency": "daily",
            "weekday": 0,
            "delivery_hour": 8,
            "timezone": "UTC",
            "max_papers": 10,
            "_save": "Save",
        },
    )
    subscriber.refresh_from_db()
    assert subscriber.email == "ada@example.org"


def test_an_internationalised_domain_is_stored_in_its_ascii_form_and_mailed_there(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/", form(email="Ana@Bücher.example")).status_code == 302

    subscriber = Subscriber.objects.get()
    assert subscriber.email == "Ana@xn--bcher-kva.example"
    sent = message_from_bytes(mail.outbox[0].message().as_bytes(), policy=policy.SMTP)
    assert sent["To"] == "Ana@xn--bcher-kva.example" and "=?" not in str(sent["To"])


def test_both_spellings_of_an_internationalised_domain_are_one_subscriber(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.subscribe("ana@bücher.example", services.Preferences(keywords="x"))
        services.subscribe("ANA@XN--BCHER-KVA.EXAMPLE", services.Preferences(keywords="y"))
    assert Subscriber.objects.count() == 1

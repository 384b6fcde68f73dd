"""The provider webhooks (anymail's `/anymail/<provider>/tracking/` URLs), only behind a secret.

A bounce or complaint event bounces or unsubscribes a subscriber, so a webhook open to the web
lets anyone do that with one POST. Without a webhook secret (`ANYMAIL_WEBHOOK_SECRET`, HTTP basic
auth `user:password`) every anymail URL answers 404, as if it were not there. With one, anymail
checks the credentials of each post with `django.utils.crypto.constant_time_compare` (since
anymail 1.2.1, CVE-2018-6596; tests/test_provider_webhooks.py holds it to that) and refuses a
wrong or missing secret with 400 before any event is read.

`manage.py check --deploy` refuses an anymail backend without a secret (config/checks.py).
"""

from functools import wraps

from anymail.utils import get_anymail_setting
from django.http import Http404
from django.urls import URLPattern


def webhook_secrets() -> list[str]:
    """The configured basic-auth secrets (anymail accepts one string or a list while rotating)."""
    secret = get_anymail_setting("webhook_secret", default=[])
    secrets = [secret] if isinstance(secret, str) else list(secret or [])
    return [value for value in secrets if value]


def _only_with_a_secret(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not webhook_secrets():
            raise Http404("No such page")
        return view(request, *args, **kwargs)

    return guarded


def guarded_patterns() -> list[URLPattern]:
    """anymail's URL patterns, each answering 404 while no webhook secret is configured.

    Checked on every request rather than when the URLs load, so that the answer always follows
    the settings of the moment.
    """
    from anymail.urls import urlpatterns

    return [
        URLPattern(pattern.pattern, _only_with_a_secret(pattern.callback), pattern.default_args, pattern.name)
        for pattern in urlpatterns
    ]

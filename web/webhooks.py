"""The provider webhooks (anymail's `/anymail/<provider>/tracking/` URLs), only behind a secret.

A bounce or complaint event bounces or unsubscribes a subscriber, so a webhook open to the web
lets anyone do that with one POST. Without a webhook secret (`ANYMAIL_WEBHOOK_SECRET`, HTTP basic
auth `user:password`) every anymail URL answers 404, as if it were not there. With one, a post
without the right credentials gets 401 here, before anymail's view is even built (some of them
fail to build for providers not set up, which would be a 500), and anymail checks them again.
Both compare with `django.utils.crypto.constant_time_compare` (anymail since 1.2.1,
CVE-2018-6596; tests/web/test_provider_webhooks.py holds both to it).

`manage.py check --deploy` refuses an anymail backend without a secret (web/checks.py).
"""

from functools import wraps

from anymail.utils import get_anymail_setting, get_request_basic_auth
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.crypto import constant_time_compare


def webhook_secrets() -> list[str]:
    """The configured basic-auth secrets (anymail accepts one string or a list while rotating)."""
    secret = get_anymail_setting("webhook_secret", default=[])
    secrets = [secret] if isinstance(secret, str) else list(secret or [])
    return [value for value in secrets if value]


def authorised(request: HttpRequest, secrets: list[str]) -> bool:
    given = get_request_basic_auth(request) or ""
    # Every secret is compared, so the time taken does not tell which one came close.
    return sum(constant_time_compare(given, secret) for secret in secrets) > 0


def _only_with_the_secret(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        secrets = webhook_secrets()
        if not secrets:
            raise Http404("No such page")
        if not authorised(request, secrets):
            response = HttpResponse("Missing or wrong webhook credentials.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Basic realm="webhooks", charset="UTF-8"'
            return response
        return view(request, *args, **kwargs)

    return guarded


def guarded_patterns() -> list[URLPattern]:
    """anymail's URL patterns, each answering 404 while no webhook secret is configured and 401
    to a request without it.

    Checked on every request rather than when the URLs load, so that the answer always follows
    the settings of the moment.
    """
    from anymail.urls import urlpatterns

    return [
        URLPattern(pattern.pattern, _only_with_the_secret(pattern.callback), pattern.default_args, pattern.name)
        for pattern in urlpatterns
    ]

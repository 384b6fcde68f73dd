"""The admin login, rate-limited against password guessing.

After ADMIN_LOGIN_FAILURES failed attempts within a quarter of an hour from one client IP, or for
one username from anywhere, every further attempt gets 429 until the window ends, right
password or not: a guesser learns nothing from the answers. Failures are counted in the same
cache-backed limiter as signups (subscribers/ratelimit.py), so they are shared by every web
process through Redis.

The username is counted under the name the login will look up: Django's login form strips it
and NFKC-normalises it, so `ａｄｍｉｎ` (full-width) logs into `admin` and must share its count.
"""

import unicodedata

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from subscribers import ratelimit

WINDOW_SECONDS = 15 * 60


def lockout_name(username: str) -> str:
    """One key for every spelling that logs into the same account.

    As the login form does (strip, then `AbstractBaseUser.normalize_username`, NFKC), and case
    folded on top: the backend matches case-sensitively, so folding only ever joins more names.
    """
    name = AbstractBaseUser.normalize_username(username.strip())
    return unicodedata.normalize("NFKC", name.casefold()).strip()


def _identities(request: HttpRequest) -> list[tuple[str, str]]:
    username = lockout_name(request.POST.get("username", ""))
    pairs = [("admin-login-ip", ratelimit.client_ip(request))]
    if username:
        pairs.append(("admin-login-user", username))
    return pairs


def locked_out(request: HttpRequest) -> bool:
    limit = settings.ADMIN_LOGIN_FAILURES
    return any(ratelimit.attempts(scope, who, WINDOW_SECONDS) >= limit for scope, who in _identities(request))


def record_failure(request: HttpRequest) -> None:
    for scope, who in _identities(request):
        ratelimit.hit(scope, who, settings.ADMIN_LOGIN_FAILURES, WINDOW_SECONDS)


@never_cache
@csrf_protect
def login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    if request.method != "POST":
        return admin.site.login(request, extra_context)
    if locked_out(request):
        response = HttpResponse(
            "Too many failed login attempts. Try again in a quarter of an hour.\n",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(WINDOW_SECONDS)
        return response
    response = admin.site.login(request, extra_context)
    # A successful login redirects; a refused one shows the form again with its error.
    if not (request.user.is_authenticated and request.user.is_staff) and response.status_code == 200:
        record_failure(request)
    return response

"""Who may read what operators read: a logged-in staff member, or a caller holding the endpoint's token."""

from django.http import HttpRequest
from django.utils.crypto import constant_time_compare


def staff_or_bearer(request: HttpRequest, token: str) -> bool:
    """A logged-in active staff member, or `Authorization: Bearer <token>` with the token set
    (compared in constant time). An unset token lets no one in by header."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and constant_time_compare(given.strip(), token)

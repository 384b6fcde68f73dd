"""A request body larger than any form of ours is refused before anything reads it.

Django streams file parts to a temporary file, and CSRF checking reads the form of every POST, so
without this a stranger holding only a CSRF cookie could send gigabytes to any page and have them
written to disk before a view looked at its token. The largest body we accept is a 1 MB BibTeX
upload (digest/liked_views.py); Django already refuses other bodies over 2.5 MB
(DATA_UPLOAD_MAX_MEMORY_SIZE).
"""

from django.http import HttpResponse

MAX_REQUEST_BYTES = 3_000_000


def declared_length(meta: dict) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # as Django reads it: no body


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if declared_length(request.META) > MAX_REQUEST_BYTES:
            too_large = f"Request too large: at most {MAX_REQUEST_BYTES // 1_000_000} MB.\n"
            return HttpResponse(too_large, status=413, content_type="text/plain")
        return self.get_response(request)

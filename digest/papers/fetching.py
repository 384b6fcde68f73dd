"""Fetching feed documents politely: conditional GET, bounded time and size, one host at a time.

Sources are http(s) URLs, file:// URLs or plain local paths. Every failure is a `FetchError`
whose message says what went wrong in words an operator can act on.
"""

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from django.conf import settings

from digest.models import Feed
from digest.papers.feed_limits import column_length

MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
ETAG_MAX_CHARS = column_length(Feed, "etag")
LAST_MODIFIED_MAX_CHARS = column_length(Feed, "last_modified")


class FetchError(Exception):
    pass


@dataclass
class FetchResult:
    url: str
    body: bytes = b""
    status: int = 200
    not_modified: bool = False
    etag: str = ""
    last_modified: str = ""
    content_type: str = ""


_last_request_at: dict[str, float] = {}
_politeness_lock = threading.Lock()


def fetch(source: str, etag: str = "", last_modified: str = "") -> FetchResult:
    """The document at `source`; `not_modified` when the server says our copy is current."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(source, etag, last_modified)
    if scheme == "file":
        return _read_file(Path(unquote(urlsplit(source).path)), source)
    if scheme and len(scheme) > 1:
        raise FetchError(f"unsupported address {source!r}: use http(s)://, file:// or a local path")
    return _read_file(local_path(source), source)


def local_path(source: str) -> Path:
    """A relative path means the working directory, else the project folder (where seeds live)."""
    path = Path(source).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return Path(settings.BASE_DIR) / path


def _read_file(path: Path, source: str) -> FetchResult:
    try:
        size = path.stat().st_size
        if size > settings.FEED_MAX_BYTES:
            raise FetchError(f"{source}: file is {size} bytes, more than FEED_MAX_BYTES ({settings.FEED_MAX_BYTES})")
        return FetchResult(url=source, body=path.read_bytes())
    except FileNotFoundError:
        raise FetchError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise FetchError(f"{source}: is a folder, not a feed file") from None
    except OSError as exc:
        raise FetchError(f"{source}: cannot read file ({exc.strerror or exc})") from None


def wait_for_host(url: str) -> None:
    """Space requests to one host by FEED_HOST_DELAY_SECONDS (arXiv asks for 3 s)."""
    delay = settings.FEED_HOST_DELAY_SECONDS
    host = (urlsplit(url).hostname or "").lower()
    if delay <= 0 or not host:
        return
    with _politeness_lock:
        wait = _last_request_at.get(host, float("-inf")) + delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        _last_request_at[host] = time.monotonic()


def _fetch_http(url: str, etag: str, last_modified: str) -> FetchResult:
    headers = {
        "User-Agent": settings.FEED_USER_AGENT,
        "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, application/json;q=0.9, */*;q=0.5",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    timeout = settings.FEED_TIMEOUT_SECONDS
    wait_for_host(url)
    with requests.Session() as session:
        session.max_redirects = MAX_REDIRECTS
        try:
            response = session.get(url, headers=headers, timeout=timeout, stream=True)
        except requests.TooManyRedirects:
            raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects (a redirect loop?)") from None
        except requests.Timeout:
            raise FetchError(f"{url}: no answer within {timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise FetchError(f"{url}: cannot connect ({_root_cause(exc)})") from None
        except requests.RequestException as exc:
            raise FetchError(f"{url}: request failed ({exc})") from None
        with response:
            if response.status_code == 304:
                return FetchResult(url=url, status=304, not_modified=True, etag=etag, last_modified=last_modified)
            if response.status_code >= 400:
                raise FetchError(f"{url}: HTTP {response.status_code} {response.reason or ''}".rstrip())
            body = _read_body(response, url, timeout)
            return FetchResult(
                url=url,
                body=body,
                status=response.status_code,
                etag=_validator(response, "ETag", ETAG_MAX_CHARS),
                last_modified=_validator(response, "Last-Modified", LAST_MODIFIED_MAX_CHARS),
                content_type=response.headers.get("Content-Type", ""),
            )


def _validator(response: requests.Response, name: str, limit: int) -> str:
    """A validator header worth storing and sending back: printable ASCII that fits its column.

    Any other (a NUL, which PostgreSQL refuses, or a 100 KB value) is dropped, and the next fetch
    is simply unconditional.
    """
    value = response.headers.get(name, "")
    return value if len(value) <= limit and value.isascii() and value.isprintable() else ""


def _read_body(response: requests.Response, url: str, timeout: float) -> bytes:
    limit = settings.FEED_MAX_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(f"{url}: body of {declared} bytes is more than FEED_MAX_BYTES ({limit})")
    # The socket timeout bounds each read; this bounds the whole body against a server that
    # drips a byte at a time.
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            received += len(chunk)
            if received > limit:
                raise FetchError(f"{url}: body is more than FEED_MAX_BYTES ({limit}); stopped reading")
            if time.monotonic() > deadline:
                raise FetchError(f"{url}: body not received within {timeout:g} s")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise FetchError(f"{url}: connection failed while reading the body ({_root_cause(exc)})") from None
    return b"".join(chunks)


def _root_cause(exc: BaseException) -> str:
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return str(exc) or type(exc).__name__

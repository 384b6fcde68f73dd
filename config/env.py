"""Tiny helpers that read typed values from the environment, and the parsers of the two values
that are a URL (EMAIL_URL) and an address (BOUNCE_ADDRESS).

A malformed value is an error at start-up, never a silent default.
"""

import os
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(TRUE_WORDS | FALSE_WORDS)}, got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]


# The backends EMAIL_URL selects (mail/backends.py), named as EMAIL_BACKEND names them.
SMTP_BACKEND = "mail.backends.SmtpBackend"
EML_BACKEND = "mail.backends.EmlFolderBackend"


def _flag(query: dict, key: str) -> bool:
    return query.get(key, ["0"])[0].lower() in {"1", "true", "yes", "on"}


def parse_email_url(url: str, base_dir: Path) -> dict:
    """Turn EMAIL_URL into Django EMAIL_* settings."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "file":
        folder = unquote(parts.netloc + parts.path) or "var/outbox"
        path = Path(folder)
        if not path.is_absolute():
            path = base_dir / path
        return {"EMAIL_BACKEND": EML_BACKEND, "EMAIL_FILE_PATH": str(path)}
    if parts.scheme in {"smtp", "smtps"}:
        if not parts.hostname:
            raise ImproperlyConfigured(f"EMAIL_URL needs a host: {url!r}")
        use_ssl = parts.scheme == "smtps" or _flag(query, "ssl")
        use_tls = _flag(query, "tls")
        if use_ssl and use_tls:
            raise ImproperlyConfigured("EMAIL_URL: choose tls (STARTTLS) or ssl (implicit TLS), not both")
        return {
            "EMAIL_BACKEND": SMTP_BACKEND,
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": parts.port or (465 if use_ssl else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": use_tls,
            "EMAIL_USE_SSL": use_ssl,
            "EMAIL_TIMEOUT": int(query.get("timeout", ["20"])[0]),
        }
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parts.scheme == "anymail":
        # anymail://sendgrid selects anymail's backend for that provider.
        return {"EMAIL_BACKEND": f"anymail.backends.{parts.netloc}.EmailBackend"}
    raise ImproperlyConfigured(f"EMAIL_URL scheme must be smtp, smtps, file, console or anymail: {url!r}")


# The token of a VERP return path and the "+" before it (mail/return_path.py): a local part holds
# 64 octets (RFC 5321 4.5.3.1.1), so the bounce mailbox's own part may have the rest.
VERP_SUFFIX_CHARS = 39


def parse_bounce_address(value: str, from_email: str, *, verp: bool) -> str:
    """BOUNCE_ADDRESS, or bounces@ the domain of the From address when it is empty."""
    address = value or f"bounces@{parseaddr(from_email)[1].rpartition('@')[2] or 'localhost'}"
    local, _, domain = address.rpartition("@")
    if not (local and domain) or not address.isascii() or any(c.isspace() or c in '<>"(),;' for c in address):
        raise ImproperlyConfigured(
            f"BOUNCE_ADDRESS must be a bare address such as bounces@example.org, got {address!r}"
        )
    if verp and len(local) > 64 - VERP_SUFFIX_CHARS:
        raise ImproperlyConfigured(
            f"BOUNCE_ADDRESS: with BOUNCE_VERP the part before @ has at most {64 - VERP_SUFFIX_CHARS} characters, "
            f"got {local!r}"
        )
    return address

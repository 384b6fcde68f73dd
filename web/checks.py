"""Paperboy's own system checks, run by `manage.py check --deploy` (tagged deploy)."""

from collections.abc import Sequence

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, Tags, register

from web.webhooks import webhook_secrets


@register(Tags.security, deploy=True)
def provider_webhooks_have_a_secret(app_configs: Sequence[AppConfig] | None = None, **kwargs: object) -> list[Error]:
    """A hosted provider reports bounces and complaints only to webhooks that need a secret."""
    if not settings.EMAIL_BACKEND.startswith("anymail.") or webhook_secrets():
        return []
    return [
        Error(
            "EMAIL_URL selects a provider (anymail) but ANYMAIL_WEBHOOK_SECRET is not set: its bounce "
            "and complaint webhooks stay switched off (404), so bounces and complaints are not recorded.",
            hint="Set ANYMAIL_WEBHOOK_SECRET=user:password (e.g. paperboy:<output of openssl rand -hex 24>) and give "
            "the provider https://user:password@your.domain/anymail/<provider>/tracking/ as its webhook URL.",
            id="paperboy.E001",
        )
    ]

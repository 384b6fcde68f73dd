from django.apps import AppConfig


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Papers and digests"

    def ready(self) -> None:
        # Connects the anymail tracking receiver (bounces and complaints from provider webhooks).
        from digest.delivery import bounces  # noqa: F401

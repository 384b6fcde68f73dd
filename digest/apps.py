from django.apps import AppConfig


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Papers and digests"

    def ready(self) -> None:
        # On import, the anymail tracking receiver connects (bounces and complaints from provider
        # webhooks) and the tasks register, in every process: a task queued by name
        # (config/celery.py) then runs eagerly where CELERY_TASK_ALWAYS_EAGER says so. The task
        # modules import the whole app, which can only load once the apps are ready.
        from digest import tasks  # noqa: F401
        from digest.delivery import bounces  # noqa: F401

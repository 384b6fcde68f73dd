from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "subscribers"

    def ready(self) -> None:
        # Registers the tasks in every process, so that one queued by name (config/celery.py) runs
        # eagerly where CELERY_TASK_ALWAYS_EAGER says so. The task module imports the models, which
        # can only load once the apps are ready.
        from subscribers import tasks  # noqa: F401

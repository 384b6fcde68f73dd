from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "subscribers"

    def ready(self) -> None:
        # Registers the project's own system checks (`manage.py check --deploy`).
        from web import checks  # noqa: F401

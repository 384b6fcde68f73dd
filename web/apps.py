from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Site"

    def ready(self) -> None:
        # Registers the project's own system checks (`manage.py check --deploy`): a module that
        # registers by being imported, once the apps are loaded.
        from web import checks  # noqa: F401

"""The last lines `make run` prints: where the site, the admin login, the outbox and the logs are."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from digest.management.commands.ensureadmin import RESET, ensure_admin


def shown(path: str | Path) -> str:
    """A path as the reader can type it from the project folder."""
    absolute = Path(path).resolve()
    try:
        return f"{absolute.relative_to(Path.cwd())}/"
    except ValueError:
        return f"{absolute}/"


def outbox() -> str:
    if getattr(settings, "EMAIL_FILE_PATH", ""):
        folder = shown(settings.EMAIL_FILE_PATH)
        return f"{folder}  (every email, one .eml file each; the newest: `ls -t {folder} | head -1`)"
    return "none: EMAIL_URL sends the emails to a mail server"


class Command(BaseCommand):
    help = "Create the admin login if there is none and print where everything is (the end of `make run`)."

    def add_arguments(self, parser):
        parser.add_argument("--address", default="127.0.0.1:8000", help="where runserver listens")
        parser.add_argument("--logs", default=os.path.join(settings.VAR_DIR, "log"), help="the logs' folder")

    def handle(self, *args, address, logs, **options):
        password = ensure_admin()
        login = f"admin / {password}  (shown this once)" if password else f"the admin you made ({RESET})"
        site = f"http://{address}/"
        self.stdout.write(
            "\n".join(
                [
                    "Paperboy is running.",
                    f"  Site:    {site}",
                    f"  Admin:   {site}admin/  login: {login}",
                    f"  Outbox:  {outbox()}",
                    f"  Logs:    {shown(logs)}  (web, worker, beat)",
                    "Ctrl-C stops web, worker and beat.",
                ]
            )
        )

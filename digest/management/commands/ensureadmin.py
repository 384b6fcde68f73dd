import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

RESET = "reset it with `.venv/bin/python manage.py changepassword admin`"


def ensure_admin() -> str | None:
    """Create an `admin` superuser unless a superuser exists; its password, the only time it is known."""
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "admin@localhost", password)
    return password


class Command(BaseCommand):
    help = "Creates an `admin` superuser with a printed one-time password, unless a superuser exists."

    def handle(self, *args, **options):
        password = ensure_admin()
        if password is None:
            self.stdout.write(f"Admin: a superuser exists ({RESET}).")
            return
        self.stdout.write(self.style.SUCCESS(f"Admin login (shown once): admin / {password}  at /admin/"))

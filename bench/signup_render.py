"""CPU per render of the signup and manage pages: Django's own widgets against subscribers/widgets.py.

    .venv/bin/python bench/signup_render.py [--renders 200]

A fresh SQLite database (migrated, seeded with the topics and trending papers) and DEBUG off.
Each page is fetched --renders times through the test client, in alternating rounds with

- the baseline, measured in the same run: the selects back on django.forms.Select with their
  choices as plain lists (deep-copied for every form), and the category checkboxes through the
  template loop the pages used before (one {% for %} body per checkbox);
- the pages as they are: StaticSelect, shared StaticChoices and GroupedCheckboxes.

Both variants must produce the same markup (compared with indentation and blank lines removed).
Figures are CPU milliseconds per page (the best round). The last line is machine-readable.
"""

import argparse
import io
import os
import re
import secrets
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CATEGORY_LOOP = """{% for group, items, count in groups %}
    <details class="categories"{% if count %} open{% endif %}>
      <summary>{{ group }}{% if count %} <span class="badge">{{ count }} chosen</span>{% endif %}</summary>
      <div class="category-grid">
        {% for code, name, checked in items %}
        <label class="category"><input type="checkbox" name="categories"
          value="{{ code }}"{% if checked %} checked{% endif %}>
          <code>{{ code }}</code> <span>{{ name }}</span></label>
        {% endfor %}
      </div>
    </details>
    {% endfor %}"""


@contextmanager
def stock_widgets():
    """The forms as they were: Django's Select, list choices, and the category template loop."""
    from django import forms
    from django.template import engines

    from subscribers.arxiv_categories import GROUPS
    from subscribers.forms import PreferencesForm

    loop = engines["django"].from_string(CATEGORY_LOOP)

    def category_checkboxes(form):
        chosen = set(form["categories"].value() or [])
        groups = [
            (group, [(code, name, code in chosen) for code, name in codes.items()], len(chosen & codes.keys()))
            for group, codes in GROUPS.items()
        ]
        return loop.render({"groups": groups})

    fields = PreferencesForm.base_fields
    saved = {
        name: (fields[name].widget, fields[name].choices)
        for name in ("weekday", "delivery_hour", "timezone", "categories")
    }
    saved_method = PreferencesForm.category_checkboxes
    try:
        for name, (widget, choices) in saved.items():
            if name != "categories":
                fields[name].widget = forms.Select(attrs=dict(widget.attrs))
            fields[name].choices = [
                (value, list(label) if isinstance(label, tuple) else label) for value, label in choices
            ]
        PreferencesForm.category_checkboxes = category_checkboxes
        yield
    finally:
        for name, (widget, choices) in saved.items():
            fields[name].widget = widget
            fields[name].choices = choices
        PreferencesForm.category_checkboxes = saved_method


def normalized(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r"/(manage|unsubscribe)/[^/\"]+/", r"/\1/TOKEN/", html)  # signed tokens carry the time
    return "\n".join(line.strip() for line in html.splitlines() if line.strip())


def cpu_ms_per_page(client, path: str, renders: int) -> tuple[float, str]:
    started = time.process_time()
    for _ in range(renders):
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    return (time.process_time() - started) / renders * 1000, response.content.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=200, help="pages per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="paperboy-bench-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
            "PAPERBOY_VAR_DIR": workdir,
            "LOG_LEVEL": "WARNING",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "testserver",
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_COOKIES": "0",
            "SECURE_HSTS_SECONDS": "0",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from digest.management.progress import progress
    from subscribers.models import Subscriber
    from subscribers.views import manage_url

    call_command("migrate", verbosity=0)
    call_command("loadseeds", stdout=io.StringIO())
    subscriber = Subscriber.objects.create(
        email="ada@example.org",
        status=Subscriber.Status.ACTIVE,
        timezone="Asia/Tokyo",
        categories=["cs.LG", "stat.ML"],
        keywords="nerf",
    )
    pages = {"signup": "/", "manage": manage_url(subscriber)}
    client = Client()
    best: dict[tuple[str, str], float] = {}
    html: dict[tuple[str, str], str] = {}
    for _ in progress(range(args.rounds), args.rounds, "Rounds"):
        for variant in ("stock", "ours"):
            with stock_widgets() if variant == "stock" else nullcontext():
                for page, path in pages.items():
                    client.get(path)  # templates compiled, choices built
                    ms, html[page, variant] = cpu_ms_per_page(client, path, args.renders)
                    best[page, variant] = min(ms, best.get((page, variant), ms))
    for page in pages:
        if normalized(html[page, "stock"]) != normalized(html[page, "ours"]):
            raise SystemExit(f"the {page} page's markup differs between the two variants")

    for page in pages:
        stock, ours = best[page, "stock"], best[page, "ours"]
        print(
            f"{page:7s} page: Django widgets {stock:6.1f} ms, ours {ours:5.1f} ms of CPU per render "
            f"({stock / ours:.1f}x faster; same markup)"
        )
    print(
        " ".join(
            [f"renders={args.renders}"]
            + [
                f"{page}_stock_ms={best[page, 'stock']:.1f} {page}_ms={best[page, 'ours']:.1f} "
                f"{page}_speedup={best[page, 'stock'] / best[page, 'ours']:.1f}"
                for page in pages
            ]
        )
    )


if __name__ == "__main__":
    main()

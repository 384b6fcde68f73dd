"""What the signup form posts, and a page without its CSRF token (to compare two answers)."""

import re


def form(**overrides) -> dict:
    data = {
        "email": "ada@example.org",
        "keywords": '"neural field", NeRF, -medical',
        "interests": "",
        "authors": "",
        "frequency": "daily",
        "weekday": "0",
        "delivery_hour": "8",
        "timezone": "Europe/Paris",
        "max_papers": "10",
        "category_mode": "boost",
        "website": "",
    }
    data.update(overrides)
    return data


def without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)

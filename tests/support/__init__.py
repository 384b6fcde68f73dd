"""What the tests share: real servers (SMTP sink, feed server, throwaway Redis and PostgreSQL),
Chromium, sample digests, the captured feeds in ../shared, and the fixtures built on them."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

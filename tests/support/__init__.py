"""What the tests share: real servers (SMTP sink, feed server, throwaway Redis and PostgreSQL),
Chromium, sample digests, the captured feeds in ../shared, and the fixtures built on them."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# In CI a missing server, browser or ../shared folder fails a test instead of skipping it.
IN_CI = bool(os.environ.get("CI"))

"""Paperboy settings: the one place that reads the environment.

Every variable is documented in `.env.example` and the README. The defaults run on a laptop with
nothing installed: SQLite under var/, tasks on a filesystem broker, emails as .eml files.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str, parse_bounce_address, parse_email_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PAPERBOY_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (e.g. `openssl rand -hex 32`).")
    # S105: a development-only key; without DEBUG an unset SECRET_KEY is refused above.
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
SITE_NAME = env_str("SITE_NAME", "Paperboy")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [SITE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "anymail",
    "subscribers",
    "digest",
    "web",
]

MIDDLEWARE = [
    "web.request_size.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.security.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context_processors.site",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'paperboy.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing at once. In WAL mode
    # readers never wait for the writer, and with synchronous=NORMAL a commit does not wait for
    # the disk (a power cut can forget the last commits, never corrupt the file).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# Set when PostgreSQL is reached through PgBouncer in transaction mode (docs/deployment.md): a
# server session then serves other clients between two transactions, so nothing may outlive one.
DB_TRANSACTION_POOLING = env_bool("DB_TRANSACTION_POOLING", False)
if DB_TRANSACTION_POOLING:
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Preloading binds the whole domain to HTTPS in browsers for months; it is the operator's choice
# (SECURE_HSTS_PRELOAD=1), so `check --deploy` should not warn while it is deliberately off.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# A bearer token that shows /healthz's details (paths, errors, times) to a probe; unset: staff only.
HEALTHZ_TOKEN = env_str("HEALTHZ_TOKEN")
# A bearer token for Prometheus to scrape /metrics; unset, /metrics is for logged-in staff only.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Redis, cache, Celery -----------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, str | int | bool] = {
        # Longer than any countdown or ETA we use, or Redis would redeliver a waiting task.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600),
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Matching and sending have queues of their own, so each can get its own workers (docs/deployment.md):
# a worker started without -Q takes all three, `-Q matching` or `-Q sending` one of them.
CELERY_TASK_QUEUES: dict[str, dict[str, str]] = {"celery": {}, "matching": {}, "sending": {}}
CELERY_TASK_ROUTES = {
    "digest.match_new_papers": {"queue": "matching"},
    "digest.match_chunk": {"queue": "matching"},
    "digest.match_recent_papers": {"queue": "matching"},
    # Encoding sentence vectors is matching's CPU work, and the model is loaded where it is done.
    "digest.store_paper_vectors": {"queue": "matching"},
    "digest.store_interest_vector": {"queue": "matching"},
    "digest.dispatch_digests": {"queue": "sending"},
    "digest.send_digest_chunk": {"queue": "sending"},
    "digest.retry_deliveries": {"queue": "sending"},
}
# Task events, so that Flower (or `celery events`) pointed at the same broker sees every task.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True

# --- Email ------------------------------------------------------------------------------------
EMAIL_URL = env_str("EMAIL_URL", "file://var/outbox")
globals().update(parse_email_url(EMAIL_URL, BASE_DIR))
# Declared for the type checker: set above for a file:// EMAIL_URL only, read by the .eml backend.
EMAIL_FILE_PATH: str
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Paperboy <paperboy@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ANYMAIL = {"WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET")} if env_str("ANYMAIL_WEBHOOK_SECRET") else {}
# DKIM signing of every message, when all three are set (see mail/dkim.py).
DKIM_PRIVATE_KEY_PATH = env_str("DKIM_PRIVATE_KEY_PATH")
DKIM_SELECTOR = env_str("DKIM_SELECTOR")
DKIM_DOMAIN = env_str("DKIM_DOMAIN")
# Permanent bounces (5xx, hard-bounce reports) after which a subscriber is marked bounced.
BOUNCE_LIMIT = env_int("BOUNCE_LIMIT", 3)
# Where bounces go (the envelope sender, Return-Path): by default bounces@ the From domain. With
# BOUNCE_VERP each digest has its own signed return path, bounces+<token>@ that domain, so a bounce
# proves which digest it answers (see mail/return_path.py); the domain's mail server must deliver
# bounces+anything@ to the bounce mailbox (Postfix: recipient_delimiter = +).
BOUNCE_VERP = env_bool("BOUNCE_VERP", True)
BOUNCE_ADDRESS = parse_bounce_address(env_str("BOUNCE_ADDRESS"), DEFAULT_FROM_EMAIL, verp=BOUNCE_VERP)

# --- Sending digests (see digest/delivery/sending.py) -----------------------------------------
SEND_EMPTY_DIGESTS = env_bool("SEND_EMPTY_DIGESTS", False)
# Deliveries per worker task (one SMTP connection each), as the dispatcher queues them.
DIGEST_CHUNK_SIZE = env_int("DIGEST_CHUNK_SIZE", 100)
SEND_MAX_ATTEMPTS = env_int("SEND_MAX_ATTEMPTS", 6)
SEND_RETRY_BASE_SECONDS = env_float("SEND_RETRY_BASE_SECONDS", 60.0)
SEND_RETRY_MAX_SECONDS = env_float("SEND_RETRY_MAX_SECONDS", 3600.0)
# A delivery in `sending` this long belonged to a dead worker: it is sent again, same Message-ID.
SENDING_TIMEOUT_SECONDS = env_int("SENDING_TIMEOUT_SECONDS", 900)
# Messages per second across all workers (counted in Redis when REDIS_URL is set); 0 = no limit.
SEND_RATE_PER_SECOND = env_float("SEND_RATE_PER_SECOND", 0.0)
# PostgreSQL: let a chunk's commits return before the disk flush. Faster, but a database server
# crash may forget the last outcomes and those digests are sent again; off keeps "never twice".
SEND_ASYNC_COMMIT = env_bool("SEND_ASYNC_COMMIT", False)
if SEND_ASYNC_COMMIT and DB_TRANSACTION_POOLING:
    # It sets synchronous_commit on the session, which the pooler would hand to other clients.
    raise ImproperlyConfigured(
        "SEND_ASYNC_COMMIT cannot be on with DB_TRANSACTION_POOLING (PgBouncer transaction mode)."
    )
# Accepted digests recorded `sent` in one statement (and subscribers looked at in one query): a
# worker killed mid-chunk may resend up to this many, same Message-IDs; 1 records each on its own.
SEND_OUTCOME_BATCH = env_int("SEND_OUTCOME_BATCH", 10)
# ...and recorded before the worker waits longer than this for the mail server's verdict; 0 records
# whenever the verdict is not already there.
SEND_RECORD_GRACE_MS = env_float("SEND_RECORD_GRACE_MS", 5.0)
# A digest larger than this (bytes, as sent) leaves out its largest papers until it fits, or fails.
DIGEST_MAX_BYTES = env_int("DIGEST_MAX_BYTES", 1_000_000)
# Refused messages (not addresses: see mail/refusals.py): /healthz says "degraded" when more than
# this share of the digests tried over the window were refused as messages (and at least 5).
MESSAGE_REFUSAL_ALARM_RATE = env_float("MESSAGE_REFUSAL_ALARM_RATE", 0.05)
MESSAGE_REFUSAL_WINDOW_MINUTES = env_int("MESSAGE_REFUSAL_WINDOW_MINUTES", 60)
# When most digests tried are refused as messages, sending pauses this long (digest/delivery/refusal_alarm.py).
MESSAGE_REFUSAL_PAUSE_SECONDS = env_int("MESSAGE_REFUSAL_PAUSE_SECONDS", 1800)

# --- Retention (see digest/delivery/retention.py and docs/operations.md) ----------------------
# Finished deliveries, their candidates, stale waiting candidates and match runs older than this
# are deleted daily. At least the 60 days a digest's web link lives, whose page reads them.
RETENTION_DAYS = env_int("RETENTION_DAYS", 60)
# Rows deleted per transaction by the purge, so that it never holds locks for long.
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 2000)

# --- Subscribers ------------------------------------------------------------------------------
# Pending subscribers who never confirm are deleted after this many days.
PENDING_PURGE_DAYS = env_int("PENDING_PURGE_DAYS", 14)
# Signup and "email me my link" posts allowed per hour, per client IP and per address.
SIGNUP_RATE_PER_IP = env_int("SIGNUP_RATE_PER_IP", 20)
SIGNUP_RATE_PER_ADDRESS = env_int("SIGNUP_RATE_PER_ADDRESS", 5)
# Changes posted on one subscriber's manage page (save, pause, resume...) per hour, then 429.
MANAGE_RATE_PER_SUBSCRIBER = env_int("MANAGE_RATE_PER_SUBSCRIBER", 20)
# Failed admin logins per quarter hour, per client IP and per username, before 429 (web/admin_login.py).
ADMIN_LOGIN_FAILURES = env_int("ADMIN_LOGIN_FAILURES", 10)

# --- Feeds and ingestion ----------------------------------------------------------------------
FEEDS = env_list(
    "FEEDS",
    [
        "https://rss.arxiv.org/rss/cs.LG",
        "https://rss.arxiv.org/rss/cs.CV",
        "https://rss.arxiv.org/rss/cs.CL",
        "https://rss.arxiv.org/rss/cs.AI",
        "https://huggingface.co/api/daily_papers",
    ],
)
INGEST_EVERY_MINUTES = env_int("INGEST_EVERY_MINUTES", 60)
FEED_TIMEOUT_SECONDS = env_float("FEED_TIMEOUT_SECONDS", 30.0)
FEED_MAX_BYTES = env_int("FEED_MAX_BYTES", 20 * 1024 * 1024)
# Entries stored from one document: each new paper costs a worker up to 0.1 s of encoding. The
# largest real capture holds 1,314 (an arXiv API search), OAI-PMH pages 1,000 (docs/security.md).
FEED_MAX_ENTRIES = env_int("FEED_MAX_ENTRIES", 5_000)
if FEED_MAX_ENTRIES < 1:
    raise ImproperlyConfigured(f"FEED_MAX_ENTRIES must be at least 1, got {FEED_MAX_ENTRIES}")
FEED_HOST_DELAY_SECONDS = env_float("FEED_HOST_DELAY_SECONDS", 3.0)
FEED_USER_AGENT = env_str("FEED_USER_AGENT", f"Paperboy/1.0 (+{SITE_URL})")

# --- Liked papers (see docs/subscribers.md) ----------------------------------------------------
# Where papers a subscriber liked but we do not hold are fetched from, by id or title.
ARXIV_API_URL = env_str("ARXIV_API_URL", "https://export.arxiv.org/api/query")
LIKED_MAX_PAPERS = env_int("LIKED_MAX_PAPERS", 200)
LIKED_FETCH_EVERY_MINUTES = env_int("LIKED_FETCH_EVERY_MINUTES", 10)

# --- Matching and ranking (see README "Matching and ranking") ---------------------------------
# Subscribers per matching task; each task makes a fixed number of queries whatever its size.
MATCH_CHUNK_SIZE = env_int("MATCH_CHUNK_SIZE", 500)
# Cosine similarity (TF-IDF) from which an interest or topic description counts as a match.
MATCH_SIMILARITY_THRESHOLD = env_float("MATCH_SIMILARITY_THRESHOLD", 0.12)
# Best matches stored per subscriber and run (the digest shows max papers, the site the rest).
MATCH_KEEP_PER_SUBSCRIBER = env_int("MATCH_KEEP_PER_SUBSCRIBER", 50)
# Of those, at most this many times the subscriber's max papers are stored (the digest's papers and
# the web copy's "did not fit"); the others are counted, not stored (digest/matching/runs.py).
MATCH_STORE_PER_MAX_PAPERS = env_int("MATCH_STORE_PER_MAX_PAPERS", 2)
# Recent stored papers added to a run's papers to fit the IDF of the similarity model.
MATCH_IDF_PAPERS = env_int("MATCH_IDF_PAPERS", 2000)
# A subscriber who confirms or changes preferences is matched against the papers of these last days.
MATCH_RECENT_DAYS = env_int("MATCH_RECENT_DAYS", 7)
# An unfinished match run this old has lost chunks: the next tick matches its papers again. Until
# then no run starts (digest/matching/runs.py); keep it well above a run's duration.
MATCH_RUN_TIMEOUT_MINUTES = env_int("MATCH_RUN_TIMEOUT_MINUTES", 60)
RANKING_MIN_RELEVANCE = env_float("RANKING_MIN_RELEVANCE", 0.2)
RANKING_TREND_WEIGHT = env_float("RANKING_TREND_WEIGHT", 0.3)
RANKING_UPVOTES_WEIGHT = env_float("RANKING_UPVOTES_WEIGHT", 0.5)
RANKING_UPVOTES_SATURATION = env_float("RANKING_UPVOTES_SATURATION", 100.0)
RANKING_RECENCY_WEIGHT = env_float("RANKING_RECENCY_WEIGHT", 0.4)
RANKING_HALF_LIFE_HOURS = env_float("RANKING_HALF_LIFE_HOURS", 48.0)
RANKING_SOURCES_WEIGHT = env_float("RANKING_SOURCES_WEIGHT", 0.1)

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_JSON = env_bool("LOG_JSON", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_JSON else "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

# --- Periodic tasks: the one place schedules are defined ---------------------------------------
DISPATCH_EVERY_MINUTES = env_float("DISPATCH_EVERY_MINUTES", 5)
MATCH_EVERY_MINUTES = env_float("MATCH_EVERY_MINUTES", 15)
CELERY_BEAT_SCHEDULE = {
    "ingest-feeds": {"task": "digest.ingest_feeds", "schedule": INGEST_EVERY_MINUTES * 60.0},
    "match-new-papers": {"task": "digest.match_new_papers", "schedule": MATCH_EVERY_MINUTES * 60.0},
    "dispatch-digests": {"task": "digest.dispatch_digests", "schedule": DISPATCH_EVERY_MINUTES * 60.0},
    "retry-deliveries": {"task": "digest.retry_deliveries", "schedule": 60.0},
    "purge-pending-subscribers": {"task": "subscribers.purge_pending", "schedule": 24 * 3600.0},
    "fetch-liked-papers": {"task": "digest.fetch_liked_papers", "schedule": LIKED_FETCH_EVERY_MINUTES * 60.0},
    "purge-old-rows": {"task": "digest.purge_old_rows", "schedule": 24 * 3600.0},
}

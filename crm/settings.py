"""Settings, read from the environment (see .env.example for every variable).

Fail closed: DEBUG is on only where DEBUG=1 asks for it (`make run` does), and nothing starts
without a SECRET_KEY, except the test suite (crm/settings_test.py), which uses a constant of its
own. `make run` and `make test` generate a local secret under .data/ and pass it on.
DJANGO_ENV=production adds the strict mode: DEBUG is always off, every secret must be set, and
cookies, HSTS and the HTTPS redirect are on.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file fills in what the real environment leaves unset; ENV_FILE names another file.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

DJANGO_ENV = env("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test"

# Only ever used by the test suite, whose databases hold nothing worth a secret.
_TEST_SECRET = "test-suite-only-secret-key-never-used-by-a-running-server-0123456789"  # noqa: S105


def _required(name: str) -> str:
    value = env(name, default="")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production.")
    return value


if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY")
    _required("DATABASE_URL")
    _required("REDIS_URL")
    DEBUG = False
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production.")
else:
    SECRET_KEY = env("SECRET_KEY", default="") or (_TEST_SECRET if TESTING else "")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. `make run` and `make test` set one for you; anywhere else, "
            "put SECRET_KEY=<a long random string> in the environment or in .env "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    DEBUG = env.bool("DEBUG", default=False)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "crm",
    "contacts",
    "pipeline",
    "ai",
    "compliance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "crm.security_headers.ContentSecurityPolicyMiddleware",
    "crm.request_guards.RejectNulCharactersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "crm.middleware.OrganizationMiddleware",
    # A member's request runs in one transaction as their organization (crm/rls.py).
    "crm.middleware.TenantContextMiddleware",
    "crm.timezones.OrganizationTimezoneMiddleware",
    "crm.middleware.HtmxMessagesMiddleware",
]

ROOT_URLCONF = "crm.urls"

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
                "crm.context_processors.workspace",
            ],
        },
    },
]

WSGI_APPLICATION = "crm.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/crm"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# PostgreSQL row-level security (crm/rls.py): requests and jobs work in this role, which the
# policies bind. Off only where the database user may not create roles.
CRM_RLS_ENABLED = env.bool("CRM_RLS_ENABLED", default=True)
CRM_DB_APP_ROLE = env("CRM_DB_APP_ROLE", default="crm_app")

# Keys that encrypt secrets at rest (crm.secrets): Fernet keys, newest first, comma-separated.
# Empty: one key derived from SECRET_KEY, so a development database works out of the box.
# Add a new key in front to rotate; old values stay readable until they are written again.
CRM_ENCRYPTION_KEYS = env.list("CRM_ENCRYPTION_KEYS", default=[])

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "crm",
    }
}

AUTH_USER_MODEL = "crm.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "crm:dashboard"

# django-allauth: email is the login, verified before first use.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "crm.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "crm.adapters.SocialAccountAdapter"
ACCOUNT_FORMS = {"signup": "crm.forms.SignupForm"}
SOCIALACCOUNT_FORMS = {"signup": "crm.forms.SocialSignupForm"}
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"

GOOGLE_CLIENT_ID = env("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env("GOOGLE_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "SCOPE": ["profile", "email"],
        "AUTH_PARAMS": {"access_type": "online"},
        **(
            {"APPS": [{"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}]}
            if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET
            else {}
        ),
    }
}
GOOGLE_LOGIN_ENABLED = bool(GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET)

OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
OPENAI_MODEL = env("OPENAI_MODEL", default="gpt-4o-mini")
# The most the import wizard waits for the AI's column mapping, in total (connect, send, read;
# there are no retries), before it goes on with its built-in suggestions: well inside the web
# timeout, since the member waits on the upload.
AI_MAPPING_BUDGET_SECONDS = env.float("AI_MAPPING_BUDGET_SECONDS", default=5.0)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="CRM <no-reply@crm.local>")

# Where people reach this deployment; used for links in emails sent outside a request.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)

# Contact import: the largest file the wizard accepts. Uploads bigger than
# FILE_UPLOAD_MAX_MEMORY_SIZE are streamed to a temporary file instead of being held in memory;
# DATA_UPLOAD_MAX_MEMORY_SIZE limits only the non-file form fields and stays at Django's default.
IMPORT_MAX_UPLOAD_MB = env.int("IMPORT_MAX_UPLOAD_MB", default=200)
# The bounds every reader of an uploaded file keeps (contacts/importing/limits.py); a file over
# one is refused with a message saying which. A workbook may unpack to this much in all, about
# 10 times the upload limit: XML packs 5-15 to 1, and a 1,000,000-row workbook of 13 columns
# unpacks to ~770 MB. Its sheet is streamed, so this bounds reading time, not memory.
IMPORT_MAX_UNPACKED_MB = env.int("IMPORT_MAX_UNPACKED_MB", default=2048)
# Above 1 MB, no part of a workbook may unpack to more than this many times its packed size
# (real sheets pack 5-15 to 1; a zip bomb, 1,000 to 1).
IMPORT_MAX_COMPRESSION_RATIO = env.int("IMPORT_MAX_COMPRESSION_RATIO", default=100)
# Rows per file, header included: Excel's own sheet limit, so any real sheet fits.
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=1_048_576)
# Columns per file: room for a CRM's full export with custom fields (HubSpot's "all
# properties" runs to several hundred); the mapping page shows one select per column.
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=1_000)
# Characters per cell: a CRM's longest text field (Salesforce's long text area, 131,072;
# Excel holds 32,767) fits. A longer cell is no real export: the file is refused, naming it.
IMPORT_MAX_CELL_CHARS = env.int("IMPORT_MAX_CELL_CHARS", default=131_072)
# Different texts in a workbook's shared string table, which is held in memory for the whole
# read (~150 MB at this limit). A bigger workbook is refused with a hint to upload it as CSV.
IMPORT_MAX_SHARED_STRINGS = env.int("IMPORT_MAX_SHARED_STRINGS", default=2_000_000)
# Lines one quoted CSV cell may span: an address or a note fits; beyond it, a quote was
# never closed and would swallow the rest of the file into one cell.
IMPORT_MAX_CELL_LINES = env.int("IMPORT_MAX_CELL_LINES", default=100)
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=None)
# Worker processes that convert an import's rows beside the database work (0: a thread).
IMPORT_CONVERT_PROCESSES = env.int("IMPORT_CONVERT_PROCESSES", default=2)
# Connections that merge an import's rows in parallel, each on its own share of the rows.
IMPORT_MERGE_LANES = env.int("IMPORT_MERGE_LANES", default=2)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date and time format app-wide (docs/glossary.md): crm/formats/<lang>/formats.py.
FORMAT_MODULE_PATH = ["crm.formats"]
# Translations of the pages people outside the app see (compliance's preference center and
# emails), switched per contact with translation.override(); no LocaleMiddleware, so the app
# itself stays in LANGUAGE_CODE.
LOCALE_PATHS = [BASE_DIR / "locale"]

STATIC_URL = "static/"
# Where `collectstatic` gathers files for production (the Docker image runs it at build time).
# Unset outside production: WhiteNoise then serves straight from the source folders and no
# stale collected copy can shadow a file being edited.
_STATIC_ROOT_DEFAULT = str(BASE_DIR / "staticfiles") if PRODUCTION else ""
STATIC_ROOT = env("STATIC_ROOT", default=_STATIC_ROOT_DEFAULT) or None
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# WhiteNoise serves /static/ from gunicorn too. Outside production it reads the source folders
# (the finders) directly, so `make run` needs no collectstatic, even with DEBUG=0.
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media"))
MEDIA_URL = "media/"

# HTTPS only in production: cookies never travel in clear, browsers remember to use HTTPS
# (HSTS), and plain HTTP is redirected, except the health probe that a load balancer or the
# Docker HEALTHCHECK sends over plain HTTP inside the network.
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_HTTPONLY = True
# Pages send the CSRF token in a header (hx-headers on <body>); no script reads the cookie.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
# Reverse proxies (addresses or networks) whose X-Forwarded-For is believed (crm/client_ip.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
# Links to other sites never carry a CRM URL (record ids, search terms) in Referer.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Celery: Redis broker; tasks acknowledged after they finish so a dead worker's task is redone.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {
    # Lead scores that depend on "in the last N days" drift as days pass.
    "nightly-lead-rescore": {
        "task": "contacts.tasks.nightly_rescore_task",
        "schedule": crontab(hour=3, minute=15),
    },
    # Jobs of every kind (bulk actions, rescores, imports, undos) whose task message was lost
    # or whose worker died are sent again. Each sweep is one small query per job table; every
    # minute keeps the wait short (a job whose worker died resumes within about three minutes).
    "sweep-stalled-jobs": {
        "task": "crm.jobs.tasks.sweep_stalled_jobs_task",
        "schedule": 60.0,
    },
    # Domain events go from the outbox to their consumers (notifications; webhooks and the
    # timeline later) within seconds. A run that finds nothing due costs one index probe. A
    # message no worker took before the next tick expires: a busy worker never piles them up.
    "relay-outbox": {
        "task": "crm.tasks.relay_outbox_task",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    # The forecast as it stood, every Monday before the working week, so "what changed since
    # last week" has a snapshot to compare with. A second run the same week takes none.
    "weekly-forecast-snapshot": {
        "task": "pipeline.tasks.weekly_forecast_snapshot_task",
        "schedule": crontab(day_of_week="mon", hour=5, minute=0),
    },
    # Duplicate scans at 02:00 in each organization's own time zone (nightly incremental,
    # full on Sunday): the tick queues the organizations that are due (contacts.dedup.jobs).
    "duplicate-scans": {
        "task": "contacts.tasks.dedup_scan_schedule_task",
        "schedule": crontab(minute="*/15"),
    },
    # Retention rules run nightly; a tick queues each organization with a rule on that has
    # not run today (compliance.jobs), so the next tick makes up a missed one.
    "retention-rules": {
        "task": "compliance.tasks.retention_schedule_task",
        "schedule": crontab(hour="1,4", minute=30),
    },
    # "Export all data" files whose download link expired are deleted.
    "purge-expired-exports": {
        "task": "compliance.tasks.purge_expired_exports_task",
        "schedule": crontab(hour=5, minute=45),
    },
}
# GET /healthz waits this long (seconds) for a Celery worker to answer its ping.
HEALTHZ_CELERY_TIMEOUT = env.float("HEALTHZ_CELERY_TIMEOUT", default=1.0)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "CRM API", "VERSION": "1.0.0"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

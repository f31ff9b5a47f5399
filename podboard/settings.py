"""PodBoard settings, read from the environment.

Embedded default: SQLite and the in-memory channel layer. ``DATABASE_URL`` switches to
PostgreSQL, ``REDIS_URL`` to the Redis channel layer. See README.md for the full table.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


DEBUG = env_bool("DEBUG", False)
LOCAL_ONLY_SECRET_KEY = "podboard-local-only-insecure-key-set-SECRET_KEY-in-production"
SECRET_KEY = env_str("SECRET_KEY") or LOCAL_ONLY_SECRET_KEY
# Django's test runner adds "testserver" itself; the default names only this machine.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", ",".join(LOCAL_HOSTS)).split(",") if h]


def refuse_public_default_key(debug, secret_key, allowed_hosts):
    """Refuse to start with the built-in key when the server answers for another machine.

    Anyone can read that key in the source and forge sessions with it. On this machine alone
    (the demo, ``make run``) it is harmless, so it keeps working there with no configuration.
    """
    public = [h for h in allowed_hosts if h not in LOCAL_HOSTS]
    if not debug and secret_key == LOCAL_ONLY_SECRET_KEY and public:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set, and ALLOWED_HOSTS serves {', '.join(public)}: set "
            "SECRET_KEY to a long random value, e.g. "
            "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )


refuse_public_default_key(DEBUG, SECRET_KEY, ALLOWED_HOSTS)
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    # Only so that /api/docs renders Swagger UI from ninja's own static files, not a CDN.
    "ninja",
    "csp",
    "axes",
    "tasks_app",
]

MIDDLEWARE = [
    # First, so every answer is counted (/metrics/prometheus), refusals included.
    "tasks_app.insight.prometheus.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "tasks_app.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Below WhiteNoise (static files skip it), above everything that writes a page's body.
    "tasks_app.middleware.PageCompressionMiddleware",
    "tasks_app.middleware.BodySizeLimitMiddleware",
    "tasks_app.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# The chain a real server runs for /api/ (podboard/asgi.py): what a JSON API answered to a
# bearer token (or a session, for the metrics routes) needs, without the pages' CSRF, messages,
# htmx and sign-in lockout layers. Bodies are bounded before Django, at the ASGI level.
API_MIDDLEWARE = [
    "tasks_app.insight.prometheus.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "tasks_app.middleware.BodySizeLimitMiddleware",
    "tasks_app.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "podboard.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "podboard.asgi.application"

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
                "tasks_app.context_processors.csp_nonce",
            ],
        },
    },
]

# Databases ---------------------------------------------------------------------------------

SQLITE_PATH = env_str("PODBOARD_SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
# Django's SQLite backend, with a process's writers queuing on a lock instead of sleeping in
# SQLite's busy handler (see podboard/sqlite_backend/base.py).
SQLITE_ENGINE = "podboard.sqlite_backend"
SQLITE_OPTIONS = {
    # Writers take the lock when their transaction begins, so two claims serialise instead
    # of failing with "database is locked" on upgrade.
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    # Each ASGI request runs on a new thread: reuse up to this many closed connections instead
    # of opening one per request (podboard.sqlite_backend; ~0.8 ms of CPU a request).
    "idle_connections": 16,
}

if env_str("DATABASE_URL"):
    # Under ASGI each request's sync code may run in a new thread, so Django's persistent
    # connections are never reused and pile up (bench/stress.py exhausted max_connections with
    # conn_max_age=60). PostgreSQL gets a psycopg connection pool per process instead.
    DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL"), conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["ENGINE"] = SQLITE_ENGINE
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {
                "connect_timeout": 5,
                # Parameters bound by the server, and statements psycopg prepares once a
                # connection has run them five times (Django turns that off unless asked, for
                # the sake of external poolers; each process here has its own pool): the pod
                # API runs the same few statements all day, and planning the claim statement
                # cost PostgreSQL more than running it.
                "server_side_binding": env_bool("PODBOARD_PG_SERVER_BINDING", True),
                "prepare_threshold": env_int("PODBOARD_PG_PREPARE_THRESHOLD", 5) or None,
                "pool": {
                    "min_size": env_int("PODBOARD_DB_POOL_MIN", 2),
                    "max_size": env_int("PODBOARD_DB_POOL_MAX", 16),
                    "timeout": 10,
                },
            }
        )
else:
    SQLITE_TEST_PATH = Path(
        env_str("PODBOARD_SQLITE_TEST_PATH", str(BASE_DIR / "var" / "test.sqlite3"))
    )
    SQLITE_TEST_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": SQLITE_ENGINE,
            "NAME": SQLITE_PATH,
            "OPTIONS": dict(SQLITE_OPTIONS),
            # Tests use a file so several threads and server processes share it.
            "TEST": {"NAME": str(SQLITE_TEST_PATH.resolve())},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channels ----------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # Redis pub/sub: a group message is one PUBLISH, and every process subscribed to the group
    # has it pushed to it. (channels-redis's list-based layer made each receiver spend four
    # round trips per message; a server process busy with requests read its board
    # announcements slower than they came and fell behind by its 30 s expiry.) A process that
    # is not listening at that moment misses the message, as with an expired one; the boards'
    # poll of the Event sequence and the pods' re-check catch up.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Auth ----------------------------------------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "board"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Served over HTTPS (SECURE_COOKIES=true): browsers must keep to HTTPS for a year. Subdomains
# and the preload list are the operator's commitment to make (docs/operations.md).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if SESSION_COOKIE_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp), enforcing: scripts and styles only from PodBoard
# itself or carrying the page's nonce; no plugins, no framing, forms post only here. The
# board's websocket is same-origin ('self' covers ws:/wss: on the page's own host and port).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Browser features PodBoard never uses, refused for the page and anything it embeds.
PODBOARD_PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)

# Sign-in throttling (django-axes): after PODBOARD_LOGIN_FAILURE_LIMIT failed sign-ins for one
# username from one address, sign-in is refused (even with the right password) for
# PODBOARD_LOGIN_LOCKOUT_MINUTES after the last failure; the board's and the admin's logins.
AUTHENTICATION_BACKENDS = [
    "tasks_app.signin.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("PODBOARD_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("PODBOARD_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "tasks_app.signin.lockout_response"
AXES_VERBOSE = False

# I18N / static -------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# WhiteNoise serves through the static finders until collectstatic has run; no need to warn.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

# PodBoard ------------------------------------------------------------------------------------

PODBOARD_LEASE_SECONDS = env_int("PODBOARD_LEASE_SECONDS", 900)
PODBOARD_MAX_BODY_BYTES = env_int("PODBOARD_MAX_BODY_BYTES", 1024 * 1024)
# Bodies are bounded as they stream, before any authentication (podboard/body_limit.py): the
# API by PODBOARD_MAX_BODY_BYTES, the import page's zip upload by PODBOARD_MAX_UPLOAD_BYTES,
# every other page (sign-in, board forms, the admin) by PODBOARD_MAX_PAGE_BODY_BYTES.
PODBOARD_MAX_UPLOAD_BYTES = env_int("PODBOARD_MAX_UPLOAD_BYTES", 64 * 1024 * 1024)
PODBOARD_MAX_PAGE_BODY_BYTES = env_int("PODBOARD_MAX_PAGE_BODY_BYTES", 2_621_440)
PODBOARD_PUBLIC_URL = env_str("PODBOARD_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
PODBOARD_YAML_MAX_BYTES = env_int("PODBOARD_YAML_MAX_BYTES", 2 * 1024 * 1024)
PODBOARD_YAML_MAX_NODES = env_int("PODBOARD_YAML_MAX_NODES", 10_000)

# Push to pods (tasks_app/push, docs/operations.md): webhook receivers on loopback or private
# networks are allowed unless this is false (recommended when the board is public).
PODBOARD_WEBHOOK_ALLOW_PRIVATE = env_bool("PODBOARD_WEBHOOK_ALLOW_PRIVATE", True)
PODBOARD_WEBHOOK_TIMEOUT = float(env_str("PODBOARD_WEBHOOK_TIMEOUT", "10"))
PODBOARD_WEBHOOK_RETRY_HOURS = float(env_str("PODBOARD_WEBHOOK_RETRY_HOURS", "24"))
PODBOARD_WEBHOOK_BACKOFF_SECONDS = float(env_str("PODBOARD_WEBHOOK_BACKOFF_SECONDS", "5"))
PODBOARD_WEBHOOK_CLAIM_SECONDS = float(env_str("PODBOARD_WEBHOOK_CLAIM_SECONDS", "0")) or None
PODBOARD_WEBHOOK_POLL_SECONDS = float(env_str("PODBOARD_WEBHOOK_POLL_SECONDS", "0.25"))
PODBOARD_LONG_POLL_RECHECK_SECONDS = float(env_str("PODBOARD_LONG_POLL_RECHECK_SECONDS", "10"))

DATA_UPLOAD_MAX_MEMORY_SIZE = max(PODBOARD_MAX_BODY_BYTES, 2_621_440)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

"""PodBoard settings, read from the environment.

Embedded default: SQLite and the in-memory channel layer. ``DATABASE_URL`` switches to
PostgreSQL, ``REDIS_URL`` to the Redis channel layer. See README.md for the full table.
"""

import os
import warnings
from pathlib import Path

import dj_database_url
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
SECRET_KEY = (
    env_str("SECRET_KEY") or "podboard-local-only-insecure-key-set-SECRET_KEY-in-production"
)
ALLOWED_HOSTS = [
    h for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h
]
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
    "tasks_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tasks_app.middleware.BodySizeLimitMiddleware",
    "tasks_app.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
            ],
        },
    },
]

# Databases ---------------------------------------------------------------------------------

SQLITE_PATH = env_str("PODBOARD_SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
SQLITE_OPTIONS = {
    # Writers take the lock when their transaction begins, so two claims serialise instead
    # of failing with "database is locked" on upgrade.
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
}

if env_str("DATABASE_URL"):
    # Under ASGI each request's sync code may run in a new thread, so Django's persistent
    # connections are never reused and pile up (bench/stress.py exhausted max_connections with
    # conn_max_age=60). PostgreSQL gets a psycopg connection pool per process instead.
    DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL"), conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {
                "connect_timeout": 5,
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
            "ENGINE": "django.db.backends.sqlite3",
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
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "capacity": 1000,
                "expiry": 30,
                "group_expiry": 7 * 24 * 3600,
            },
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
PODBOARD_PUBLIC_URL = env_str("PODBOARD_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
PODBOARD_LEASE_SWEEP_SECONDS = env_int("PODBOARD_LEASE_SWEEP_SECONDS", 30)
PODBOARD_YAML_MAX_BYTES = env_int("PODBOARD_YAML_MAX_BYTES", 2 * 1024 * 1024)
PODBOARD_YAML_MAX_NODES = env_int("PODBOARD_YAML_MAX_NODES", 10_000)

DATA_UPLOAD_MAX_MEMORY_SIZE = max(PODBOARD_MAX_BODY_BYTES, 2_621_440)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

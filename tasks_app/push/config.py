"""Push settings, read from Django settings (``podboard/settings.py`` reads the environment)."""

from django.conf import settings


def webhook_timeout():
    """Seconds a receiver has to answer one delivery."""
    return float(getattr(settings, "PODBOARD_WEBHOOK_TIMEOUT", 10.0))


def retry_window_seconds():
    """How long after a delivery was written it is retried before it is given up."""
    return float(getattr(settings, "PODBOARD_WEBHOOK_RETRY_HOURS", 24.0)) * 3600


def backoff_base_seconds():
    """The wait before the first retry; each later one waits twice as long (to an hour)."""
    return float(getattr(settings, "PODBOARD_WEBHOOK_BACKOFF_SECONDS", 5.0))


BACKOFF_CAP_SECONDS = 3600.0


def claim_seconds():
    """How long a worker owns a delivery it is sending; after that another worker (or this one
    after a restart) sends it again. Longer than the timeout, so a slow send is not doubled."""
    value = getattr(settings, "PODBOARD_WEBHOOK_CLAIM_SECONDS", None)
    return float(value) if value else webhook_timeout() + 20.0


def poll_seconds():
    """How often a worker looks for due deliveries when nothing woke it."""
    return float(getattr(settings, "PODBOARD_WEBHOOK_POLL_SECONDS", 0.25))


def long_poll_max_seconds():
    return 30


def long_poll_recheck_seconds():
    """How often a waiting ``next`` looks again without a wake-up (a change made by a process
    the in-memory channel layer cannot reach, such as a CLI import)."""
    return float(getattr(settings, "PODBOARD_LONG_POLL_RECHECK_SECONDS", 10.0))

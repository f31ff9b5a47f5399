"""How far behind the database this process's boards are: a gauge for metrics and the log.

Every frame a board receives carries the age of its newest change (now minus that change's
commit time). The senders report each age here, so an operator can read the last and the
peak figure (``lag_seconds``, ``lag_stats``: what a Prometheus endpoint exports) and sees a
warning line when boards fall more than ``NOTE_SECONDS`` behind, at most one per
``WARN_EVERY_SECONDS`` so a saturated server does not also flood its log.
"""

import logging
import time

log = logging.getLogger(__name__)

# Past this lag a board shows its "behind by N s" note and the server logs a warning.
NOTE_SECONDS = 2.0
WARN_EVERY_SECONDS = 10.0

_gauge = {"last": 0.0, "peak": 0.0, "frames": 0, "lagging_frames": 0, "at": 0.0}
_warned = {"at": float("-inf"), "peak": 0.0}


def observe(seconds):
    """Record the lag of one frame sent to one board (seconds, None when not a live change)."""
    if seconds is None:
        return
    seconds = max(0.0, seconds)
    _gauge["last"] = seconds
    _gauge["peak"] = max(_gauge["peak"], seconds)
    _gauge["frames"] += 1
    _gauge["at"] = time.time()
    if seconds <= NOTE_SECONDS:
        return
    _gauge["lagging_frames"] += 1
    _warned["peak"] = max(_warned["peak"], seconds)
    now = time.monotonic()
    if now - _warned["at"] >= WARN_EVERY_SECONDS:
        log.warning(
            "live boards are %.1f s behind the database (worst %.1f s since the last warning)",
            seconds,
            _warned["peak"],
        )
        _warned["at"], _warned["peak"] = now, 0.0


def lag_seconds():
    """Return the lag of the newest frame this process sent (0.0 before any)."""
    return _gauge["last"]


def lag_stats():
    """Return ``last``, ``peak`` (seconds), ``frames``, ``lagging_frames`` (over the note
    threshold) and ``at`` (when the last frame went out, ``time.time()``)."""
    return dict(_gauge)


def reset():
    """Forget the figures (tests, or a metrics scrape that wants a peak per interval)."""
    _gauge.update(last=0.0, peak=0.0, frames=0, lagging_frames=0, at=0.0)
    _warned.update(at=float("-inf"), peak=0.0)

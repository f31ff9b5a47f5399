"""Showing a long import or export's progress on a text stream.

Import and export report progress as ``progress(stage, done, total)`` calls; ``Progress`` is
such a callable for any text stream (``sys.stderr``, a file, a ``StringIO``). On a terminal it
redraws one bar in place; elsewhere (a log, a pipe) it writes a plain line at most every
``every`` seconds, so a long run shows it is alive without flooding the log.
"""

import time


class Progress:
    """Report ``(stage, done, total)`` on ``stream``.

    ``bar``: redraw a bar in place (default: when ``stream`` is a terminal). Jobs of fewer than
    ``minimum`` items stay quiet.
    """

    WIDTH = 30

    def __init__(self, stream, *, bar=None, every=5.0, minimum=200, clock=time.monotonic):
        if bar is None:
            bar = getattr(stream, "isatty", lambda: False)()
        self.stream, self.bar, self.every, self.minimum = stream, bar, every, minimum
        self.clock = clock
        self.last = clock()
        self.drawn = False

    def __call__(self, stage, done, total):
        if total < self.minimum:
            return
        filled = self.WIDTH * done // max(total, 1)
        line = f"{stage:>6} [{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{total}"
        if self.bar:
            self.stream.write(f"\r{line}")
            self.drawn = True
        else:
            now = self.clock()
            if now - self.last < self.every:
                return
            self.last = now
            self.stream.write(f"{line}\n")
        self.stream.flush()

    def close(self):
        """End the bar's line, so what is written next starts on a line of its own."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

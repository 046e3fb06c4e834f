"""A progress bar on stderr for the images a pipeline has finished."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal).

    Parameters
    ----------
    total : int
        Number of items.
    label : str
        Shown before the bar.
    stream : file, optional
        Default ``sys.stderr``.
    width : int
        Characters of the bar itself.
    """

    def __init__(self, total: int, label: str, stream=None, width: int = 30):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.count = -1
        self.last_print = 0.0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, count: int, force: bool = False) -> None:
        """Show ``count`` finished items (redrawn on a terminal, else at most every 10 s)."""
        now = time.monotonic()
        changed = count != self.count
        self.count = count
        # A log file gets a line now and then, not one per poll.
        if not self.tty and not force and (not changed or now - self.last_print < 10):
            return
        if self.tty and not changed and not force and now - self.last_print < 1:
            return
        self.last_print = now
        fraction = count / self.total if self.total else 1.0
        filled = int(round(self.width * min(fraction, 1.0)))
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"{self.label} [{bar}] {count}/{self.total} images, {now - self.start:.0f} s"
        if self.tty:
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, count: int) -> None:
        """Show the final count and end the line."""
        self.update(count, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

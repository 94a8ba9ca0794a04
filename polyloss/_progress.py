"""A minimal progress bar on stderr (no dependency): a redrawn line on a terminal, sparse lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """``total`` items; ``costs`` (optional, one relative cost per item, in order) makes the time left
    follow the work left rather than the count left, for items as unequal as widths 2^7 and 2^11."""

    def __init__(self, total: int, desc: str = "", stream=None, enabled: bool = True, initial: int = 0,
                 costs=None):
        self.total, self.desc, self.done = max(int(total), 0), desc, int(initial)
        if costs is not None and len(costs) != self.total:
            raise ValueError(f"costs has {len(costs)} entries for {self.total} items")
        self._cum = [0.0]
        for c in costs if costs is not None else [1.0] * self.total:
            self._cum.append(self._cum[-1] + max(float(c), 0.0))
        self._start = self.done
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._last_print = 0.0
        self._draw(force=True)

    def _line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(30 * frac)
        el = time.monotonic() - self.t0
        done, start, total = (self._cum[min(k, self.total)] for k in (self.done, self._start, self.total))
        rate = (done - start) / el if el > 0 and done > start else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        eta_s = f"{eta:6.0f}s left" if eta == eta else "   ?s left"
        return f"{self.desc} [{bar:<30}] {self.done}/{self.total} {el:6.1f}s {eta_s}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self._last_print > 0.1 or self.done == self.total:
                self.stream.write("\r" + self._line())
                self.stream.flush()
                self._last_print = now
        elif force or now - self._last_print > 10 or self.done == self.total:
            self.stream.write(self._line() + "\n")
            self.stream.flush()
            self._last_print = now

    def update(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

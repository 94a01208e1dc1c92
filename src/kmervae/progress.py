"""Progress for long work: a tqdm bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("kmervae")


def _si(value: float) -> str:
    """1234567 -> '1.23M' (the way tqdm's unit_scale prints)."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix}"
    return f"{value:.3g}" if value != int(value) else f"{value:.0f}"


class _LogProgress:
    """tqdm's small API (update, set_postfix_str, close) written as log lines every ``interval`` s."""

    def __init__(self, desc: str, total: float | None, unit: str, interval: float):
        self.desc, self.total, self.unit, self.interval = desc, total, unit, interval
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._emit(now)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def _emit(self, now: float) -> None:
        rate = self.n / max(now - self.start, 1e-9)
        of = f"/{_si(self.total)}" if self.total else ""
        extra = f" ({self.postfix})" if self.postfix else ""
        log.info("%s: %s%s %s, %s %s/s%s", self.desc, _si(self.n), of, self.unit, _si(rate), self.unit, extra)

    def close(self) -> None:
        self._emit(time.monotonic())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress(desc: str, total: float | None = None, unit: str = "it", interval: float = 30.0, **tqdm_kwargs):
    """A progress reporter: tqdm when stderr is a terminal, log lines every ``interval`` s otherwise."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(desc=desc, total=total, unit=unit, unit_scale=True, dynamic_ncols=True, **tqdm_kwargs)
    return _LogProgress(desc, total, unit, interval)

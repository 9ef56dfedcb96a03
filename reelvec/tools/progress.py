"""Progress of the long client commands (bulk index, evaluate) on stderr: done/total, videos/min,
ETA and failures so far. A bar on a terminal; where stderr is a pipe or a log, a plain line
every twentieth of a stage; nothing with --json, whose output is for programs."""

import sys
import threading
import time

from tqdm import tqdm

BAR, LINES, QUIET = "bar", "lines", "quiet"
LINES_PER_STAGE = 20


def mode_for(json_output: bool, stream=None) -> str:
    if json_output:
        return QUIET
    stream = stream or sys.stderr
    return BAR if stream.isatty() else LINES


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


class Progress:
    """Stages one after another, each with an optional count of videos. `advance` may be called
    from worker threads. Skipped videos count as done but not in the rate, so that a resumed run's
    fast skips do not promise an ETA the real work cannot keep."""

    def __init__(self, mode: str = QUIET, stream=None, clock=time.monotonic, prefix: str = ""):
        self.mode, self.stream, self.clock, self.prefix = mode, stream or sys.stderr, clock, prefix
        self._lock = threading.Lock()
        self._bar = None
        self.name, self.total, self.done, self.failed, self.skipped = "", 0, 0, 0, 0
        self.started = self._next_line = 0

    def stage(self, name: str, total: int = 0) -> None:
        with self._lock:
            self._close_bar()
            self.name, self.total, self.done, self.failed, self.skipped = name, total, 0, 0, 0
            self.started = self.clock()
            self._next_line = self._step()
            if self.mode == BAR and total:
                self._bar = tqdm(total=total, desc=self.prefix + name, file=self.stream, dynamic_ncols=True,
                                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}")
            elif self.mode != QUIET:
                self._line(f"{name}: 0/{total}" if total else f"{name}...")

    def advance(self, failed: bool = False, skipped: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.failed += failed
            self.skipped += skipped
            if self._bar is not None:
                self._bar.set_postfix_str(self.details(), refresh=False)
                self._bar.update(1)
            elif self.mode == LINES and (self.done >= self._next_line or self.done == self.total):
                self._next_line = self.done + self._step()
                self._line(f"{self.name}: {self.done}/{self.total}, {self.details()}")

    def details(self) -> str:
        """Rate, ETA (or time taken, at the end), failures and skips of the current stage."""
        elapsed = self.clock() - self.started
        worked = self.done - self.skipped
        parts = []
        if worked and elapsed > 0:
            per_second = worked / elapsed
            parts.append(f"{per_second * 60:.1f} videos/min")
            if self.done < self.total:
                parts.append(f"ETA {duration((self.total - self.done) / per_second)}")
        if self.done >= self.total:
            parts.append(f"took {duration(elapsed)}")
        elif not parts:
            parts.append("ETA ?")
        parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts)

    def write(self, text: str, file=None) -> None:
        """A line of output that does not tear the bar."""
        file = file or sys.stdout
        if self._bar is not None:
            self._bar.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def close(self) -> None:
        with self._lock:
            self._close_bar()

    def _step(self) -> int:
        return max(1, self.total // LINES_PER_STAGE)

    def _line(self, text: str) -> None:
        print(self.prefix + text, file=self.stream, flush=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

"""One progress sink for every long-running command: rich bars on a terminal, plain timestamped lines otherwise.

Everything goes to stderr, so ``--json`` keeps stdout for its one JSON document. On a terminal (and
with ``rich`` installed) tasks are live bars and status lines are printed above them; in a pipe, a
CI log or a file, the same events are lines like ``[  42 s] calibrate 12/64``, a task's line at most
every ``every`` seconds (and always its first and last), so a 7-minute step is never silent.

    sink = Progress()                          # or Progress(quiet=True)
    sink.status("exporting to ONNX")
    with sink.task("calibrate", total=64) as bar:
        for batch in batches:
            ...
            bar.advance()
    sink.step("download wheels", 2, 4)         # numbered stages
    sink.close()

Callback forms for code that takes plain callables: :meth:`Progress.update` is ``(label, i, n)``
and :meth:`Progress.status` is ``(text)``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from typing import Any, Iterator, TextIO

__all__ = ["Progress", "Task"]

_MARKUP = re.compile(r"(?<!\\)\[(?:/|/?[a-z#@][^\[\]]*)\]")


def _plain(text: str) -> str:
    """``text`` without rich markup tags (``[bold]``, ``[/]``); escaped brackets (``\\[``) kept as brackets."""
    return _MARKUP.sub("", text).replace("\\[", "[")


def _escape(text: str) -> str:
    """Text shown as it is inside markup (a subprocess line may hold ``[...]``)."""
    return text.replace("[", "\\[")


class Task:
    """One counted task of a :class:`Progress`; ``advance`` it, or set ``update(completed)``."""

    def __init__(self, sink: "Progress", description: str, total: int | None) -> None:
        self._sink, self.description, self.total = sink, description, total
        self.completed = 0
        self._last_line = float("-inf")
        self._rich_id = None

    def advance(self, n: int = 1, description: str | None = None) -> None:
        self.update(self.completed + n, description)

    def update(self, completed: int, description: str | None = None) -> None:
        self.completed = completed
        if description is not None:
            self.description = description
        self._sink._render(self)


class Progress:
    """Progress for one command. ``quiet``: nothing at all. ``stream``: where plain lines go (stderr).
    ``terminal``: force (True) or forbid (False) the rich rendering; None asks the stream."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None, terminal: bool | None = None,
                 every: float = 10.0) -> None:
        self.quiet = quiet
        self._stream = stream or sys.stderr
        self._every = every
        self._started = time.perf_counter()
        self._tasks: dict[str, Task] = {}
        self._detail: Task | None = None
        self._detail_at = float("-inf")
        self._bar = None
        self._console = None
        if quiet:
            return
        if terminal is None:
            terminal = bool(getattr(self._stream, "isatty", lambda: False)())
        if terminal:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress
            except ImportError:  # rich is part of [compress]; the runtime-only install has none
                return
            self._console = Console(file=self._stream, force_terminal=True)
            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self._console, transient=True)

    # -- lines --------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _line(self, text: str, markup: bool = True) -> None:
        if not markup:
            text = _escape(text)
        if self._console is not None:
            self._console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", soft_wrap=True, highlight=False)
        else:
            print(f"[{self.elapsed():6.0f} s] {_plain(text)}", file=self._stream, flush=True)

    def status(self, text: str, markup: bool = False) -> None:
        """A status line (always shown unless quiet). With ``markup``, ``text`` may use rich markup
        (``[red]x[/]``), which plain lines drop; without, it is shown as it is."""
        if not self.quiet:
            self._line(text, markup)

    def step(self, text: str, i: int, n: int) -> None:
        """Numbered stage ``i`` of ``n``."""
        self._detail_at = time.perf_counter()
        self._end_detail()
        if not self.quiet:
            self._line(f"[bold]\\[{i}/{n}][/bold] {_escape(text)}")

    def detail(self, text: str) -> None:
        """A passing detail (e.g. a subprocess's output line): on a terminal, the latest one is shown
        under the bars; in plain lines, one at most every ``every`` seconds."""
        if self.quiet:
            return
        if self._bar is not None:
            if self._detail is None:
                self._detail = self.start("", None)
            self._detail.update(0, description=f"[dim]{_escape(text[:160])}[/dim]")
            return
        now = time.perf_counter()
        if now - self._detail_at >= self._every:
            self._detail_at = now
            self._line(f"  ... {text}", markup=False)

    def _end_detail(self) -> None:
        if self._detail is not None:
            task, self._detail = self._detail, None
            self._finish(task)

    # -- counted tasks ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        task = self.start(description, total)
        try:
            yield task
        finally:
            self._finish(task)

    def update(self, label: str, i: int, n: int) -> None:
        """Callback form: task ``label`` has done ``i`` of ``n``."""
        task = self._tasks.get(label) or self.start(label, n, completed=i)
        task.update(i)
        if i >= n:
            self._finish(task)

    def start(self, description: str, total: int | None, completed: int = 0) -> Task:
        """A counted task that lasts until :meth:`close` (or use :meth:`task` as a context manager)."""
        task = Task(self, description, total)
        task.completed = completed
        self._tasks[description] = task
        if self.quiet:
            return task
        if self._bar is not None:
            if not self._bar.live.is_started:
                self._bar.start()
            task._rich_id = self._bar.add_task(description, total=total)
        else:
            self._render(task)
        return task

    def _render(self, task: Task) -> None:
        if self.quiet:
            return
        if self._bar is not None and task._rich_id is not None:
            self._bar.update(task._rich_id, completed=task.completed, description=task.description)
            return
        now = time.perf_counter()
        done = task.total is not None and task.completed >= task.total
        if done or now - task._last_line >= self._every:
            task._last_line = now
            count = f"{task.completed}/{task.total}" if task.total is not None else f"{task.completed}"
            self._line(f"{task.description} {count}", markup=False)

    def _finish(self, task: Task) -> None:
        if self._tasks.get(task.description) is task:
            del self._tasks[task.description]
        if self.quiet:
            return
        if self._bar is not None and task._rich_id is not None:
            self._bar.remove_task(task._rich_id)
            task._rich_id = None
        elif task.total is None or task.completed < task.total:
            task._last_line = float("-inf")
            self._render(task)  # the last count, whatever the throttle

    def close(self) -> None:
        self._end_detail()
        for task in list(self._tasks.values()):
            self._finish(task)
        if self._bar is not None and self._bar.live.is_started:
            self._bar.stop()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

"""One progress sink (edgeseal.progress): plain timestamped lines off a terminal, rich on one, nothing when quiet."""

from __future__ import annotations

import io
import re

import pytest

from edgeseal.progress import Progress


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_plain_lines_are_timestamped_throttled_and_never_silent_at_the_end():
    out = io.StringIO()
    sink = Progress(stream=out, every=3600)  # a StringIO is no terminal: plain lines
    sink.step("download wheels", 2, 4)
    sink.status("[green]v[/] trial #3: 12.5 KiB", markup=True)
    sink.status("[linux-x86_64] not built: no device")  # plain text by default: brackets kept
    with sink.task("calibrate", total=5) as task:
        for _ in range(5):
            task.advance()
    with sink.task("stopped early", total=10) as task:
        task.advance(3)
    for i in range(1, 4):
        sink.update("host inference", i, 3)
    for i in range(50):
        sink.detail(f"pip line {i}")
    sink.close()
    lines = _lines(out)
    assert all(re.match(r"\[\s*\d+ s\] ", line) for line in lines), lines
    text = [line.split("] ", 1)[1] for line in lines]
    assert text[:3] == ["[2/4] download wheels", "v trial #3: 12.5 KiB", "[linux-x86_64] not built: no device"]
    # each task: its first line and its final count, nothing between (every=3600 s)
    assert text[3:] == ["calibrate 0/5", "calibrate 5/5", "stopped early 0/10", "stopped early 3/10",
                        "host inference 1/3", "host inference 3/3"]


def test_details_come_at_most_once_per_interval():
    out = io.StringIO()
    sink = Progress(stream=out, every=0.0)
    sink.detail("a [b] c")
    sink.detail("d")
    assert [line.split("] ", 1)[1] for line in _lines(out)] == ["  ... a [b] c", "  ... d"]
    out = io.StringIO()
    sink = Progress(stream=out, every=3600)
    sink.step("venv", 3, 4)
    sink.detail("suppressed: the step line was just printed")
    assert len(_lines(out)) == 1


def test_quiet_prints_nothing_and_terminal_mode_draws_with_rich():
    out = io.StringIO()
    sink = Progress(quiet=True, stream=out)
    sink.status("x")
    sink.step("y", 1, 2)
    with sink.task("z", 3) as task:
        task.advance(3)
    sink.detail("w")
    sink.close()
    assert out.getvalue() == ""
    pytest.importorskip("rich")
    out = io.StringIO()
    with Progress(stream=out, terminal=True) as sink:
        sink.status("hello [bold]world[/bold]", markup=True)
        sink.status("[linux-x86_64] kept as text")
        with sink.task("bars", 2) as task:
            task.advance(2)
    rendered = out.getvalue()
    assert "hello" in rendered and "world" in rendered and "[bold]" not in rendered and "\x1b[" in rendered
    assert "[linux-x86_64] kept as text" in rendered

"""What every benchmark here measures with: peak RSS from /proc, fresh processes, and median (min–max) tables.

Linux only (it reads /proc), like the machines the figures in README.md come from.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from queue import Empty
from typing import Any, TypeVar

from rich.table import Table

from worker.commands.redis_server import free_port
from worker.delivery.sink import start_sink

_T = TypeVar("_T")


def _status_mib(key: str, pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(f"{key}:"))
    return int(line.split()[1]) / 1024


def peak_rss_mib() -> float:
    """This process's peak resident set since exec or `reset_peak_rss`.

    Not `getrusage().ru_maxrss`: a spawned child inherits its parent's peak in that figure (Linux carries
    the pre-exec image's high-water mark over), so after the 1M-row load every child would report the parent.
    """
    return _status_mib("VmHWM")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def reset_peak_rss() -> None:
    """Start the high-water mark again from the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def in_fresh_process(work: Callable[..., _T], *args: Any) -> _T:
    """`work(*args)` in a newly spawned interpreter, so its peak RSS owes nothing to earlier runs."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(work, *args).result()


@dataclass
class Figures:
    """Samples by measurement, in the order first recorded; `unit` and `digits` say how to print them."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, tuple[str, int]] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, digits: int = 0) -> None:
        self.samples.setdefault(name, []).append(value)
        self.units[name] = (unit, digits)

    def show(self, name: str) -> str:
        if name not in self.samples:
            return "–"
        values, (unit, digits) = sorted(self.samples[name]), self.units[name]
        number = f"{{:,.{digits}f}}".format
        if len(values) == 1:
            return f"{number(values[0])} {unit}".rstrip()
        return f"{number(statistics.median(values))} {unit} ({number(values[0])}–{number(values[-1])})"

    def table(self, title: str, heading: str = "value") -> Table:
        """Every measurement in a row: its name, and the median (min–max) of its samples under `heading`."""
        table = Table(title=title)
        table.add_column("measurement")
        table.add_column(heading, justify="right")
        for name in self.samples:
            table.add_row(name, self.show(name))
        return table




def process_peak_rss_mib(pid: int) -> float:
    """Another process's peak resident set (VmHWM), while it runs."""
    return _status_mib("VmHWM", pid)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (a worker's pool children), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def machine() -> str:
    """The machine line every table in README.md starts with."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")).split()[1]) / 1024 / 1024
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.platform()}, "
            f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def in_step(setup: Callable[..., Callable[[], object]], shares: Sequence[tuple[Any, ...]]) -> float:
    """Seconds from the first start to the last end of `setup(*share)()`, one spawned process per share.

    Each process runs `setup` (imports, templates) before the clock starts, then all start together.
    `setup` must be a module-level function, so that a spawned process can import it.
    """
    context = get_context("spawn")
    start, results = context.Barrier(len(shares)), context.Queue()
    processes = [context.Process(target=_in_step_child, args=(setup, share, start, results)) for share in shares]
    for process in processes:
        process.start()
    outcomes: list[tuple[float, float] | str] = []
    while len(outcomes) < len(processes):
        try:
            outcomes.append(results.get(timeout=1))
        except Empty:
            if all(process.exitcode is not None for process in processes) and results.empty():
                raise RuntimeError("a process died without a word (killed?)") from None
    for process in processes:
        process.join()
    failures = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(processes)} processes failed; the first:\n{failures[0]}")
    spans = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    return max(end for _, end in spans) - min(began for began, _ in spans)


def _in_step_child(setup: Callable[..., Callable[[], object]], share: tuple[Any, ...], start: Any,
                   results: Any) -> None:
    try:
        work = setup(*share)
        start.wait()
        began = time.monotonic()
        work()
        results.put((began, time.monotonic()))
    except BaseException:
        start.abort()  # the others stop waiting for this one (BrokenBarrierError) and report too
        results.put(traceback.format_exc())
        raise


# SMTP sinks on loopback, for the benchmarks that send: Postfix's smtp-sink (apt-get install postfix) reads
# and discards; Herald's own sink (worker/delivery/sink.py) writes every message as an .eml file, with no fsync.
SINKS = {"smtp-sink": "Postfix smtp-sink", "herald": "Herald sink"}
SMTP_SINK = Path("/usr/sbin/smtp-sink")
_MESSAGES_SO_FAR = re.compile(rb"mesg=(\d+)")


@dataclass
class LoopbackSink:
    """A sink on 127.0.0.1 in a process of its own, and how many messages it has accepted so far."""

    kind: str  # a key of SINKS
    port: int
    _store: Path  # smtp-sink: the log of its counters (-c); herald: the outbox
    _discarded: int = 0

    def received(self) -> int:
        if self.kind == "smtp-sink":  # -c rewrites "sess=S quit=Q mesg=M\r" after every session, QUIT and "."
            with self._store.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 200))
                counts = _MESSAGES_SO_FAR.findall(log.read())
            return int(counts[-1]) if counts else 0
        return self._discarded + sum(1 for entry in os.scandir(self._store) if entry.name.endswith(".eml"))

    def wait_for(self, total: int, idle: float = 60.0) -> float:
        """Wait until exactly `total` messages have arrived since the sink started; the monotonic time then.

        Raises if none arrives for `idle` seconds before that, or if more than `total` came.
        """
        count, progress = self.received(), time.monotonic()
        while count < total:
            time.sleep(0.01)
            now, newer = time.monotonic(), self.received()
            if newer > count:
                count, progress = newer, now
            elif now - progress > idle:
                raise RuntimeError(f"{SINKS[self.kind]}: {count} of {total} messages, none in the last {idle:.0f} s")
        if count > total:
            raise RuntimeError(f"{SINKS[self.kind]}: {count} messages, {total} were sent")
        return time.monotonic()

    def discard(self) -> None:
        """Delete the stored messages and write dirty pages back, so that the next run starts clean."""
        if self.kind == "herald":
            for entry in os.scandir(self._store):
                if entry.name.endswith(".eml"):
                    os.unlink(entry.path)
                    self._discarded += 1
        os.sync()


@contextmanager
def loopback_sink(kind: str, workdir: Path) -> Iterator[LoopbackSink]:
    """Start the `kind` sink (a key of SINKS) on a free 127.0.0.1 port, keeping what it needs in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "smtp-sink":
        if not SMTP_SINK.exists():
            raise RuntimeError(f"{SMTP_SINK} is missing: apt-get install postfix (no configuration needed)")
        port, log = free_port(), workdir / "smtp-sink.log"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses to keep root's privileges
        with log.open("wb") as output:
            process = subprocess.Popen([SMTP_SINK, *user, "-c", f"127.0.0.1:{port}", "1024"], stdout=output,
                                       stderr=subprocess.STDOUT)
        try:
            _wait_until_listening(port, process, log)
            yield LoopbackSink(kind, port, log)
        finally:
            process.terminate()
            process.wait(10)
        return
    context = get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(target=_serve_outbox, args=(workdir / "outbox", theirs))
    server.start()
    theirs.close()
    try:
        try:
            port = ours.recv() if ours.poll(60) else None
        except EOFError:  # its process ended: its traceback is on stderr
            port = None
        if port is None:
            raise RuntimeError("Herald's sink did not start")
        yield LoopbackSink(kind, port, workdir / "outbox")
    finally:
        ours.close()  # the sink's process reads end-of-file and stops
        server.join(30)
        if server.is_alive():
            server.terminate()
            server.join()


def _serve_outbox(outbox: Path, parent: Connection) -> None:
    """Herald's sink, in its own process: serves until the parent closes its end of the pipe."""
    with start_sink(outbox) as sink:
        parent.send(sink.port)
        try:
            parent.recv()
        except EOFError:
            pass


def _wait_until_listening(port: int, process: subprocess.Popen, log: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited at start:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")

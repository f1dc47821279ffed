"""Redis, the outbox sink and the web's listening socket that `herald up` and `herald demo` run on this machine.

A part whose address is Herald's to choose (its variables unset: `Settings.own_parts`) starts on the port
recorded in data/ports.json, else on its default (6399, 2525, 8000), and on a free port when another
program holds that one: another installation's Redis on 6399 is never taken for this one's. A part set
explicitly is used as it is, or started where it names this machine and nothing answers there; it is
never moved. Each yields the address the children are to use and whether Herald runs the part itself.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from foundation.problems import display_path
from foundation.settings import Settings
from worker.commands.redis_server import PortTaken, RedisServer, start_redis
from worker.commands.startup import redis_answering
from worker.delivery.sink import start_sink, tcp_listener

MOVES = 3  # ports tried for a part Herald chooses: its own, then free ones (another process may take one first)


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def listening(host: str, port: int) -> socket.socket:
    """The web's socket on HERALD_LISTEN, or one line saying why it cannot be had."""
    try:
        return tcp_listener(host, port)
    except OSError as error:
        raise SystemExit(f"The web side cannot listen on {host}:{port} ({error.strerror}): stop the program that "
                         "listens there, or set HERALD_LISTEN to a free address.") from None


def web_socket(settings: Settings) -> socket.socket:
    """Bound here and handed to the web process, so no other program can take the port in between."""
    host, port = settings.listen
    if "web" in settings.own_parts:
        try:
            return tcp_listener(host, port)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            port = 0
    return listening(host, port)


@contextmanager
def redis_for(settings: Settings, workdir: Path) -> Iterator[tuple[str, bool]]:
    url = settings.redis_url
    own = "redis" in settings.own_parts
    if not own and not (local(url) and not answers(url)):
        redis_answering(url).close()
        yield url, False
        return
    server = _started_redis(workdir, urlsplit(url).port, movable=own)
    try:
        yield server.url, True
    finally:
        server.stop()


def _started_redis(workdir: Path, port: int | None, *, movable: bool) -> RedisServer:
    try:
        for _ in range(MOVES - 1 if movable else 0):
            try:
                return start_redis(workdir, port=port)
            except PortTaken:
                port = None  # a free one
        return start_redis(workdir, port=port)
    except RuntimeError as error:  # its last words say why ("pid:M date # words"); the whole log is in the file
        last_words = str(error).strip().splitlines()[-1].rpartition(" # ")[2]
        raise SystemExit(f"Herald's Redis did not start ({last_words}); its log: "
                         f"{display_path(workdir / 'redis.log')}") from None


@contextmanager
def sink_for(settings: Settings) -> Iterator[tuple[str, bool]]:
    url = settings.smtp_url
    if "smtp" not in settings.own_parts and not (local(url) and not answers(url)):
        yield url, False
        return
    port = urlsplit(url).port or 25
    try:
        sink = start_sink(settings.outbox_dir, port=port)
    except OSError as error:
        if "smtp" not in settings.own_parts or error.errno != errno.EADDRINUSE:
            raise SystemExit(f"The local mail sink cannot listen on 127.0.0.1:{port} ({error.strerror}): stop the "
                             "program that listens there, or set HERALD_SMTP_URL to a free port.") from None
        sink = start_sink(settings.outbox_dir)  # a free port
    with sink:
        yield sink.url, True

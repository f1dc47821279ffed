"""A real DNS server on loopback for the DKIM and doctor tests (dnslib's), serving the zone a test writes.

`records` maps a name to its records: ("TXT", "text" or ["string", ...]), ("A", "192.0.2.1"), ("MX", "mx.example.org"),
("PTR", "host.example.org"). A name it does not hold answers NXDOMAIN, as a real authoritative server would.
UDP and TCP on the same port: a long TXT record may come back truncated over UDP, and resolvers retry over TCP.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from types import TracebackType

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Record = tuple[str, "str | list[str]"]
_TYPES = {"A": A, "AAAA": AAAA, "MX": MX, "PTR": PTR}


def txt(text: str | list[str]) -> TXT:
    return TXT([text] if isinstance(text, str) else text)


class _Zone(BaseResolver):
    def __init__(self, records: dict[str, Iterable[Record]]) -> None:
        self.serve(records)

    def serve(self, records: dict[str, Iterable[Record]]) -> None:
        """Answer from `records` from now on (a test's next configuration)."""
        self.records = {name.lower().rstrip("."): list(rows) for name, rows in records.items()}

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        wanted = QTYPE[request.q.qtype]
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for kind, value in self.records[name]:
            if kind == wanted:
                data = txt(value) if kind == "TXT" else _TYPES[kind](value)
                reply.add_answer(RR(request.q.qname, getattr(QTYPE, kind), rdata=data, ttl=60))
        return reply


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host`."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port


def free_loopback_53() -> str:
    """A loopback address (127.x.y.z: all of 127/8 is this machine) whose port 53 is free for UDP and TCP.

    The system's resolver (glibc's, which OpenDKIM uses) asks port 53 only; a random address keeps two test runs
    on one machine apart. Binding port 53 needs root: PermissionError otherwise."""
    for _ in range(50):
        host = f"127.{random.randrange(1, 255)}.{random.randrange(0, 256)}.{random.randrange(2, 255)}"
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                udp.bind((host, 53))
                tcp.bind((host, 53))
        except PermissionError:
            raise
        except OSError:
            continue
        return host
    raise RuntimeError("no loopback address with a free port 53")


class DnsServer:
    """`with DnsServer(records) as dns:` serves on dns.host:dns.port; `dns.zone.serve(other)` changes what it says."""

    def __init__(self, records: dict[str, Iterable[Record]], host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.zone = _Zone(records)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self._servers = [DNSServer(self.zone, address=host, port=self.port, tcp=tcp, logger=quiet)
                         for tcp in (False, True)]

    @property
    def address(self) -> str:
        """host:port, as `herald doctor --dns` takes it."""
        return f"{self.host}:{self.port}"

    def __enter__(self) -> DnsServer:
        for server in self._servers:
            server.start_thread()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()

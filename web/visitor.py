"""Who is asking: the peer of the connection, or, behind a trusted reverse proxy, the visitor it forwards.

Anyone can send `X-Forwarded-For`, so Herald believes it only from the proxies of HERALD_TRUSTED_PROXIES
(uvicorn's own reading, which trusts anyone on loopback, is off), and only its trusted part: each proxy
appends the address it saw, so reading from the right, the first address that is not itself a trusted
proxy is the visitor. Whatever stands to its left is what the visitor claimed, and is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import Request

Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
NO_PEER = "-"  # not a network connection (no address at all)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Networks) -> str:
    """The visitor's address, from the peer and every X-Forwarded-For header in the order received."""
    if peer is None:
        return NO_PEER
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    address = peer
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(address, trusted):
            break
        address = hop
    return address


def visitor(request: Request, trusted: Networks) -> str:
    """`client_address` of a request: the key of its per-address limits."""
    return client_address(request.client.host if request.client else None,
                          request.headers.getlist("x-forwarded-for"), trusted)


def _trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an address (a name, a port, a visitor's invention): never a proxy of ours
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:10.0.0.2 is 10.0.0.2 on a dual-stack socket
    return any(ip in network for network in trusted)

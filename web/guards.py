"""What happens to a request before any route sees it: a body past the cap is refused unread, and HEAD is
answered as GET.

Both are plain ASGI, not Starlette's BaseHTTPMiddleware: the cap must act before anything reads the body
(FastAPI reads and parses a route's whole body before its dependencies run, so a 24 MB body grew the process
by 700 MB on its way to a 401). A refusal goes out while the body is still unread, and the server drops
whatever the client keeps sending.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Every request body, API and forms alike: a subscribe or preferences form is a few KiB, an API call a few
# hundred bytes, so 64 KiB refuses nothing real and bounds what any request can make the process hold.
MAX_BODY_BYTES = 64 * 1024


class BodyCap:
    """413 for a body past `limit`: at once from its Content-Length, or, for a chunked body, as soon as the
    bytes received pass it (a chunked body is read here, up to the limit, and handed on whole)."""

    def __init__(self, app: ASGIApp, refusal: Callable[[str], Response], limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.refusal, self.limit = app, refusal, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:  # the server delivers no more than it says (h11 holds the client to it)
            if length.isdigit() and int(length) > self.limit:
                await self.refusal(scope["path"])(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if "transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body ended: nobody to answer
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self.refusal(scope["path"])(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read above, as one message; after it, whatever the server says next (a disconnect)."""
    pending = [body]

    async def again() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return again


class HeadAsGet:
    """HEAD gets what GET would, status and headers, without the body (RFC 9110 9.3.2): link scanners and
    previews use it. A GET changes nothing, so neither does a HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            await send({**message, "body": b""} if message["type"] == "http.response.body" else message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)

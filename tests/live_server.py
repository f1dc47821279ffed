"""The real web app served over HTTP for browser tests, and browser pages that may reach only it.

`live_server(settings)` serves `create_app(settings)` with uvicorn on 127.0.0.1 in a background
thread of the test process, as `herald web` does (uvicorn believes no forwarded header itself). The
listening socket is bound before the app is built, so the port is known (no race for a "free" port)
and the settings' `base_url` is the server's own URL: the links in messages sent with those settings
lead to it. Leaving the block sets `should_exit` and joins the thread; a server that does not stop
fails the test rather than lingering.

`herald_web(env, url)` runs the `herald web` command itself as a child process, for what only a
process of its own shows: its memory, its listening address, the peer address of a connection.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import uvicorn
from browser import PAGE_TIMEOUT_MS, VIEWPORT_HEIGHT

from foundation.settings import PROJECT_ROOT, Settings, load_settings
from web.app import create_app

START_SECONDS = 15
STOP_SECONDS = 15


@dataclass(frozen=True)
class LiveServer:
    url: str  # http://127.0.0.1:PORT, without a trailing slash
    settings: Settings  # the settings it serves, base_url included


def sqlite_settings(workdir: Path, template_database: str, redis_url: str) -> Settings:
    """Settings for a module's live server: a copy of the migrated SQLite template under `workdir`, the shipped
    content and templates, and `redis_url` (the subscribe form counts its rate limits there)."""
    database = workdir / "data" / "herald.sqlite3"
    database.parent.mkdir(parents=True)
    shutil.copyfile(template_database, database)
    return replace(load_settings(), content_dir=PROJECT_ROOT / "content", templates_dir=PROJECT_ROOT / "templates",
                   outbox_dir=workdir / "outbox", data_dir=workdir / "data", database_url=f"sqlite:///{database}",
                   redis_url=redis_url)


@contextmanager
def live_server(settings: Settings, tls: tuple[Path, Path] | None = None) -> Iterator[LiveServer]:
    """`create_app` on a loopback port of its own, with `base_url` set to that server's URL; with `tls` (certificate
    and key files), over https, as the proxy in front of Herald serves it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}"
    served = replace(settings, base_url=url)
    config = uvicorn.Config(create_app(served), lifespan="off", log_config=None, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=5, proxy_headers=False,
                            ssl_certfile=tls and str(tls[0]), ssl_keyfile=tls and str(tls[1]))
    server = uvicorn.Server(config)
    # In a thread other than the main one, uvicorn installs no signal handlers: pytest keeps its own.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="herald-live-server",
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the live web server exited while starting (see the captured log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the live web server did not start in {START_SECONDS} s")
            time.sleep(0.02)
        yield LiveServer(url, served)
    finally:
        server.should_exit = True
        thread.join(STOP_SECONDS)
        listener.close()
        if thread.is_alive():
            raise RuntimeError(f"the live web server did not stop in {STOP_SECONDS} s")


@contextmanager
def herald_web(env: Mapping[str, str], url: str, *options: str, log: Path) -> Iterator[subprocess.Popen]:
    """`herald web [options]` with `env`, once it answers at `url` (its output in `log`); stopped after."""
    with log.open("ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "worker.cli", "web", *options], env=dict(env),
                                   cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"herald web did not answer at {url} (exit code {process.poll()}):\n"
                                   + log.read_text(errors="replace"))
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/static/herald.css", timeout=1):
            return True
    except OSError:
        return False


@dataclass
class SitePage:
    """A browser page that may load only the live server's URLs; everything else is aborted and noted."""

    page: object  # playwright.sync_api.Page
    console: list[str] = field(default_factory=list)  # "type: text" of every console message
    aborted: list[str] = field(default_factory=list)  # URLs the page asked for outside the server
    served: list[str] = field(default_factory=list)  # URLs of `foreign` pages the router answered

    def csp_violations(self) -> list[str]:
        """Console reports of the Content Security Policy refusing something (Chromium: "Refused to …")."""
        return [line for line in self.console if "Content Security Policy" in line]


@contextmanager
def site_page(browser, origin: str, width: int, foreign: Mapping[str, str] | None = None) -> Iterator[SitePage]:
    """A page in a fresh context, `width` CSS px wide at scale 1, reaching only `origin` (no network beyond).

    A request blocked by the page's CSP never reaches the router, so a URL in `aborted` is one the
    CSP allowed; a request the CSP refused shows in `csp_violations()` instead. `foreign` maps URLs
    of other origins (say https://example.org/host.html) to the HTML the router answers them with:
    another site's page, to put the server's pages in its <iframe>s (an https one: Chromium lets only a
    secure page ask for the permission to reach a loopback address).
    """
    foreign = dict(foreign or {})
    context = browser.new_context(viewport={"width": width, "height": VIEWPORT_HEIGHT}, device_scale_factor=1,
                                  color_scheme="light", reduced_motion="reduce", locale="en-GB")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    if foreign:
        # Chromium's Local Network Access checks block a public site's request to a loopback address (the
        # live server) unless the page may: a real deployment is public itself, so the test grants it.
        context.grant_permissions(["local-network-access"])
    try:
        visit = SitePage(context.new_page())

        def route(route) -> None:
            url = route.request.url
            if url in foreign:
                visit.served.append(url)
                route.fulfill(status=200, content_type="text/html; charset=utf-8", body=foreign[url])
            elif url.startswith((origin + "/", "data:", "about:", "blob:")):
                route.continue_()
            else:
                visit.aborted.append(url)
                route.abort()

        visit.page.route("**/*", route)
        visit.page.on("console", lambda message: visit.console.append(f"{message.type}: {message.text}"))
        yield visit
    finally:
        context.close()

"""The web layer's guards (issue 13), through the real app and the real `herald web` process: a body capped before
anything reads it, and the API's token checked before its body; forwarded addresses believed only from trusted
proxies; `herald web` listening where it is told; no docs pages; no caching of personal pages and no Host header
in a redirect; only public segments' newsletters in the archive; HEAD answered as GET; and the processes that
refuse to start with unsafe settings."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from engine import seed
from fastapi.testclient import TestClient
from live_server import herald_web
from servers import free_port
from sqlalchemy import select

from foundation.problems import ContentInvalid
from foundation.settings import PROJECT_ROOT
from subscribers.models import Subscriber
from subscribers.segments import load_segments
from subscribers.tokens import Signer
from subscribers.topics import load_topics
from web.app import create_app
from web.guards import MAX_BODY_BYTES
from web.pages.subscribe import PER_IP
from web.visitor import client_address
from worker.campaigns import ledger
from worker.commands import services

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
MB = 1024 * 1024


def web_env(tmp_path: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    """What a `herald web` child needs: its own data folder and SQLite store, the test's Redis."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return dict(os.environ, HERALD_DATA_DIR=str(data), HERALD_DATABASE_URL=f"sqlite:///{data / 'herald.sqlite3'}",
                HERALD_REDIS_URL=redis_url, HERALD_API_TOKEN=TOKEN, **overrides)


def on_port(tmp_path: Path, redis_url: str, **overrides: str) -> tuple[dict[str, str], str, tuple[str, ...]]:
    """Env, URL and `--host/--port` options for a `herald web` on a free loopback port of its own."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return web_env(tmp_path, redis_url, HERALD_BASE_URL=url, **overrides), url, ("--host", "127.0.0.1",
                                                                                   "--port", str(port))


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (the peak resident size) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


def chunked(body: bytes, size: int = MB) -> Iterator[bytes]:
    """The body without a Content-Length: httpx sends an iterator with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


# ---- 1. memory before authentication; every body capped --------------------------------------------------

def test_a_100_mb_body_is_refused_without_the_web_process_growing(tmp_path, redis_server):
    """The issue's case, measured by the process's peak resident size (VmHWM, reset once resting), not by time."""
    env, url, options = on_port(tmp_path, redis_server.url)
    big_json = b'{"item": "' + b"a" * (100 * MB) + b'"}'
    big_form = b"csrf=1.x&email=" + b"a" * (100 * MB)
    with herald_web(env, url, *options, log=tmp_path / "web.log") as web, httpx.Client(base_url=url,
                                                                                       timeout=300) as client:
        for headers in ({}, AUTH):  # every path the refusals take, once, so that resting includes their code
            client.post("/api/campaigns", json={"item": "x" * 1000}, headers=headers)
        client.post("/subscribe", content=b"email=x", headers=FORM)
        resting = memory_kib(web.pid, "VmRSS")
        Path(f"/proc/{web.pid}/clear_refs").write_text("5")  # the peak starts again from the resting size
        answers = [
            client.post("/api/campaigns", content=big_json, headers=JSON),  # Content-Length, no token
            client.post("/api/campaigns", content=chunked(big_json), headers=JSON),  # chunked, no token
            client.post("/api/campaigns", content=big_json, headers=JSON | AUTH),  # the token, but too large
            client.post("/api/campaigns", content=chunked(big_json), headers=JSON | AUTH),
            client.post("/subscribe", content=chunked(big_form), headers=FORM),  # a page's form
        ]
        peak = memory_kib(web.pid, "VmHWM")
        assert client.get("/api/campaigns", headers=AUTH).status_code == 200, "still serving"
    assert peak - resting < 50 * 1024, f"grew by {(peak - resting) // 1024} MB while refusing"
    assert [answer.status_code for answer in answers] == [401, 401, 413, 413, 413]


@pytest.fixture
def app_client(settings) -> TestClient:
    """The app on an empty SQLite store: what these tests look at never reaches the store."""
    return TestClient(create_app(replace(settings, api_token=TOKEN)))


@pytest.mark.parametrize("chunks", [False, True], ids=["content-length", "chunked"])
def test_a_body_past_the_cap_is_413_json_for_the_api_and_a_bilingual_page_for_forms(app_client, chunks):
    too_large = b"x" * (MAX_BODY_BYTES + 1)
    body = chunked(too_large, 4096) if chunks else too_large
    api = app_client.post("/api/campaigns", content=body, headers=JSON | AUTH)
    assert api.status_code == 413 and api.headers["content-type"] == "application/json"
    assert api.json() == {"detail": f"a request body may hold at most {MAX_BODY_BYTES} bytes"}
    body = chunked(too_large, 4096) if chunks else too_large
    page = app_client.post("/subscribe?lang=en", content=body, headers=FORM)
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "Too much sent at once" in page.text and "Prea mult trimis deodată" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_a_body_within_the_cap_still_reaches_the_route(app_client):
    """The cap refuses nothing smaller: at the cap exactly, the route answers (422: not a campaign)."""
    body = b'{"item": "' + b"a" * (MAX_BODY_BYTES - 12) + b'"}'
    assert len(body) == MAX_BODY_BYTES
    for content in (body, chunked(body, 1000)):
        answer = app_client.post("/api/campaigns", content=content, headers=JSON | AUTH)
        assert answer.status_code == 422, answer.text


# ---- 2. X-Forwarded-For, only from trusted proxies -------------------------------------------------------

@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("127.0.0.1", ["203.0.113.9"], "127.0.0.1"),  # not a trusted proxy: its header is anyone's words
    ("10.0.0.2", [], "10.0.0.2"),  # a trusted proxy that forwarded nothing
    ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
    ("10.0.0.2", ["198.51.100.1, 203.0.113.9"], "203.0.113.9"),  # the left one is what the visitor claimed
    ("10.0.0.2", ["198.51.100.1", "203.0.113.9, 10.0.0.3"], "203.0.113.9"),  # two proxies, two headers
    ("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4"),  # trusted all the way: the left-most
    ("10.0.0.2", ["spoofed, 2001:db8::1"], "2001:db8::1"),
    ("10.0.0.2", ["  , "], "10.0.0.2"),
    (None, ["203.0.113.9"], "-"),  # no peer at all (not a network connection)
])
def test_the_visitor_is_the_right_most_forwarded_address_that_is_not_a_trusted_proxy(peer, forwarded, expected):
    trusted = (ipaddress.ip_network("10.0.0.0/29"),)
    assert client_address(peer, forwarded, trusted) == expected


def flood(url: str, local_address: str, forwarded_for) -> list[int]:  # noqa: ANN001 - n -> the header's value
    """One more subscribe post than the per-address limit allows, from `local_address`, each with its own header."""
    with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=local_address)) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/subscribe?lang=en").text).group(1)
        return [client.post("/subscribe?lang=en", data={"csrf": csrf, "email": "not an address"},
                            headers={"X-Forwarded-For": forwarded_for(n)}).status_code for n in range(PER_IP[0] + 1)]


def test_the_rate_limit_believes_x_forwarded_for_only_from_a_trusted_proxy(tmp_path, redis_server):
    """Real connections from two loopback addresses: 127.0.0.1 (anyone) and 127.0.0.2 (the trusted proxy)."""
    limited = [422] * PER_IP[0] + [429]
    env, url, options = on_port(tmp_path, redis_server.url, HERALD_TRUSTED_PROXIES="127.0.0.2")
    with redis.Redis.from_url(redis_server.url) as counters:  # earlier tests' posts
        for key in counters.scan_iter("herald:*:subscribe:ip:*"):
            counters.delete(key)
    with herald_web(env, url, *options, log=tmp_path / "web.log"):
        assert flood(url, "127.0.0.1", lambda n: f"203.0.113.{n}") == limited, "invented addresses, one bucket"
        assert flood(url, "127.0.0.2", lambda n: f"198.51.100.{n}") == [422] * (PER_IP[0] + 1), "one per visitor"
        assert flood(url, "127.0.0.2", lambda n: "192.0.2.7") == limited, "the visitor's own bucket"
        assert flood(url, "127.0.0.2", lambda n: f"10.9.9.{n}, 192.0.2.8") == limited, "the proxy's entry counts"


# ---- 3. where `herald web` listens ---------------------------------------------------------------------

def test_herald_web_listens_on_herald_listen_not_on_the_public_urls_port(tmp_path, redis_server):
    port = free_port()
    env = web_env(tmp_path, redis_server.url, HERALD_BASE_URL="https://news.example.org",
                  HERALD_LISTEN=f"127.0.0.1:{port}")
    with herald_web(env, f"http://127.0.0.1:{port}", log=tmp_path / "web.log"):
        pass


# ---- 4. no docs pages from a CDN: the OpenAPI JSON only, under the same CSP --------------------------------

def test_no_docs_pages_and_the_openapi_json_has_the_strict_csp(app_client):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert app_client.get(path).status_code == 404, path
    schema = app_client.get("/openapi.json")
    assert schema.status_code == 200 and "/api/campaigns" in schema.json()["paths"]
    assert schema.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'self'")


# ---- 5. personal pages are not cached; redirects use the base URL ------------------------------------------

@pytest.fixture
def web(db_settings, sessions) -> tuple[TestClient, int]:
    """The app on 30 fictional people (the last one pending) and one sent newsletter to `all-subscribers`."""
    seed(db_settings, 30, seed_value=13)
    with sessions() as session:
        session.scalars(select(Subscriber).order_by(Subscriber.id.desc())).first().status = "pending"
        campaign = ledger.create(session, item=NEWSLETTER, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=None, origin="cli", now=datetime.now(UTC))
        campaign.state, campaign.finished_at = "sent", datetime.now(UTC)
        session.commit()
    return TestClient(create_app(replace(db_settings, api_token=TOKEN))), campaign.id


def person(sessions, status: str) -> Subscriber:
    with sessions() as session:
        return session.scalars(select(Subscriber).where(Subscriber.status == status).order_by(Subscriber.id)).first()


def personal_paths(db_settings, sessions, campaign_id: int) -> list[str]:
    """A working link of each kind that shows a person's address or data."""
    signer = Signer(db_settings.secret_key)
    confirmed, pending = person(sessions, "confirmed"), person(sessions, "pending")
    links = [f"/{prefix}/{signer.sign(purpose, confirmed.id, confirmed.link_key, campaign_id)}"
             for prefix, purpose in (("u", "unsubscribe"), ("p", "preferences"), ("m", "view"), ("r", "rsvp"))]
    return [*links, f"/p/{signer.sign('preferences', confirmed.id, confirmed.link_key)}/data.json",
            f"/c/{signer.sign('confirm', pending.id, pending.link_key, campaign_id)}"]


def test_pages_that_show_a_person_are_never_stored_by_a_cache(web, sessions, db_settings):
    client, campaign_id = web
    for path in [*personal_paths(db_settings, sessions, campaign_id), "/u/not-a-token"]:
        answer = client.get(path)
        assert answer.headers.get("Cache-Control") == "no-store", (path, answer.status_code)
    assert "no-store" not in client.get("/archive/").headers.get("Cache-Control", ""), "public pages may be cached"


@pytest.mark.parametrize(("path", "location"), [("/archive", "/archive/"), ("/archive?lang=en", "/archive/?lang=en")])
def test_a_redirect_goes_to_the_base_url_whatever_the_host_header_says(app_client, settings, path, location):
    answer = app_client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert 300 <= answer.status_code < 400
    assert answer.headers["Location"] == settings.base_url + location


# ---- 6. the archive shows only newsletters to public segments -------------------------------------------

def sent_newsletter(sessions, segment: str) -> int:
    with sessions() as session:
        campaign = ledger.create(session, item=NEWSLETTER, message="newsletter", segment=segment, edition=None,
                                    send_at=None, origin="cli", now=datetime.now(UTC))
        campaign.state, campaign.finished_at = "sent", datetime.now(UTC)
        session.commit()
        return campaign.id


def test_the_archive_leaves_out_newsletters_to_segments_that_are_not_public(db_settings, sessions):
    client = TestClient(create_app(db_settings))
    private = sent_newsletter(sessions, "romanian-municipalities-transfer-networks")
    assert f"/archive/{private}" not in client.get("/archive/?lang=en").text
    assert client.get(f"/archive/{private}?lang=en").status_code == 404
    public = sent_newsletter(sessions, "all-subscribers")
    listing = client.get("/archive/?lang=en").text
    assert f"/archive/{public}?lang=en" in listing and f"/archive/{private}" not in listing
    assert client.get(f"/archive/{public}?lang=en").status_code == 200
    assert client.get(f"/archive/{private}?lang=en").status_code == 404


def content_with_segments(tmp_path: Path, change: str) -> Path:
    """A copy of the shipped content whose segments.yaml has `change` appended to calls-for-proposals."""
    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content)
    path = content / "segments.yaml"
    path.write_text(path.read_text().replace("calls-for-proposals:\n", f"calls-for-proposals:\n  {change}\n"))
    return content


def test_a_segment_marked_public_goes_in_the_archive_and_all_subscribers_is_public_by_default(
        tmp_path, db_settings, sessions):
    shipped = load_segments(PROJECT_ROOT / "content", load_topics(PROJECT_ROOT / "content"))
    assert {name for name, segment in shipped.items() if segment.public} == {"all-subscribers"}
    content = content_with_segments(tmp_path, "public: true")
    client = TestClient(create_app(replace(db_settings, content_dir=content)))
    marked = sent_newsletter(sessions, "calls-for-proposals")
    assert f"/archive/{marked}?lang=en" in client.get("/archive/?lang=en").text
    assert client.get(f"/archive/{marked}").status_code == 200
    content = content_with_segments(tmp_path / "other", "public: false")
    (content / "segments.yaml").write_text((content / "segments.yaml").read_text().replace(
        "all-subscribers:\n", "all-subscribers:\n  public: false\n"))
    assert not any(segment.public for segment in load_segments(content, load_topics(content)).values())


@pytest.mark.parametrize("value", ["yes", "1", "[true]", "'true'"])
def test_public_takes_true_or_false_and_says_where(tmp_path, value):
    content = content_with_segments(tmp_path, f"public: {value}")
    with pytest.raises(ContentInvalid) as raised:
        load_segments(content, load_topics(content))
    [problem] = raised.value.problems
    line = (content / "segments.yaml").read_text().splitlines().index(f"  public: {value}") + 1
    assert (problem.file, problem.line) == (content / "segments.yaml", line)
    assert problem.message == "'public:' takes true (the newsletters sent to it are in the web archive) or false"


# ---- 7. HEAD answers as GET would, without a body and without side effects ----------------------------------

def everyone(sessions) -> list[tuple]:
    with sessions() as session:
        return sorted(map(tuple, session.execute(select(Subscriber.id, Subscriber.status, Subscriber.updated_at))))


def test_head_answers_as_get_without_a_body_and_changes_nothing(web, sessions, db_settings):
    client, campaign_id = web
    paths = [*personal_paths(db_settings, sessions, campaign_id), "/u/not-a-token", "/subscribe?lang=en",
             "/archive/", f"/archive/{campaign_id}", "/static/herald.css", "/openapi.json", "/no/such/page"]
    before = everyone(sessions)
    for path in paths:
        head, get = client.head(path), client.get(path)
        assert head.status_code == get.status_code, path
        assert dict(head.headers) == dict(get.headers), path
        assert head.content == b"", path
    for headers in ({}, AUTH):
        head, get = client.head("/api/campaigns", headers=headers), client.get("/api/campaigns", headers=headers)
        assert (head.status_code, head.headers, head.content) == (get.status_code, get.headers, b"")
    assert everyone(sessions) == before


# ---- 8. processes that refuse to start; logs only their owner reads -----------------------------------------

UNSAFE_COMMANDS = [["web"], ["worker", "--pool", "solo"], ["beat"], ["up"]]


def unsafe_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A public base URL, and every server elsewhere (a TEST-NET address that never answers)."""
    env = {key: value for key, value in os.environ.items() if key != "HERALD_SECRET_KEY"}
    return env | dict(HERALD_DATA_DIR=str(tmp_path / "data"), HERALD_BASE_URL="https://news.example.org",
                      HERALD_REDIS_URL="redis://192.0.2.1:6379/0", HERALD_SMTP_URL="smtp://192.0.2.1:25?security=none",
                      HERALD_DATABASE_URL=f"sqlite:///{tmp_path / 'herald.sqlite3'}",
                      HERALD_LISTEN=f"127.0.0.1:{free_port()}") | overrides


def refusal(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker.cli", *command], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("command", UNSAFE_COMMANDS, ids=lambda command: command[0])
def test_without_a_secret_key_a_public_herald_refuses_to_start_with_one_line(tmp_path, command):
    result = refusal(command, unsafe_env(tmp_path))
    assert result.returncode != 0
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("HERALD_SECRET_KEY is not set, and HERALD_BASE_URL (https://news.example.org)")


@pytest.mark.parametrize("command", [["worker", "--pool", "solo"], ["up"]], ids=lambda command: command[0])
def test_the_worker_refuses_to_mail_from_a_public_http_base_url(tmp_path, command):
    result = refusal(command, unsafe_env(tmp_path, HERALD_SECRET_KEY="k" * 43,
                                         HERALD_BASE_URL="http://news.example.org"))
    assert result.returncode != 0
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("HERALD_BASE_URL=http://news.example.org is not https")


def test_the_logs_of_herald_up_and_demo_are_readable_by_their_owner_only(tmp_path):
    logs = tmp_path / "data" / "logs"
    previous = os.umask(0o022)
    try:
        child = services.spawn(["beat", "--help"], logs)
        assert child.wait(30) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert stat.S_IMODE((logs / "beat.log").stat().st_mode) == 0o600
    assert "Usage" in (logs / "beat.log").read_text()

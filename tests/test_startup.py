"""One line, no traceback and exit 1 when a setting cannot work: a HERALD_SMTP_URL that cannot be read, a
database that does not answer or whose folder is missing, a Redis that does not answer, a port taken;
and `herald up` / `herald demo` stop everything when a part does not start. Each through the `herald`
command in a process of its own, as an operator meets it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import redis
from processes import herald, own_env, processes_with
from servers import free_port
from sqlalchemy import create_engine, select

from foundation.settings import PROJECT_ROOT
from foundation.tables import Installation
from worker.campaigns.installation import OWNER_KEY
from worker.commands.redis_server import redis_server

NEWSLETTER = "content/newsletters/2027-01-uia-transfer-networks"
SMTP_FORMAT = "smtp://user:password@host:port?security=starttls|tls|none"
# On today's main each of these starts and waits for what it needs, for ever: the test stops it after this.
NEVER_STOPS = 30


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line on stderr (the demo's import leaves an empty one before it)."""
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stderr.strip("\n")
    assert "Traceback" not in said and "\n" not in said, result.stderr
    return said


@pytest.mark.parametrize("command", [["send", "--test-to", "someone@example.org", NEWSLETTER], ["worker"], ["web"]],
                         ids=lambda command: command[0])
def test_a_smtp_url_that_cannot_be_read_is_one_line(tmp_path, command):
    result = herald(own_env(tmp_path, HERALD_SMTP_URL="smtp//mail.example.org:587"), *command, timeout=NEVER_STOPS)
    assert one_line(result) == f"HERALD_SMTP_URL must start with smtp:// (got no scheme); write it as {SMTP_FORMAT}"


@pytest.mark.parametrize("command", [["campaigns", "list"], ["status", "1"], ["send", "--dry-run", NEWSLETTER],
                                     ["segments", "list"], ["worker"], ["beat"], ["web"], ["up"]],
                         ids=lambda command: "-".join(command[:2]))
def test_a_database_server_that_does_not_answer_is_one_line_in_every_command(tmp_path, command):
    port = free_port()  # a stopped PostgreSQL: nothing listens where the URL says
    env = own_env(tmp_path, HERALD_DATABASE_URL=f"postgresql://herald:s3cret@127.0.0.1:{port}/herald")
    line = one_line(herald(env, *command, timeout=NEVER_STOPS))
    assert line.startswith(f"The database postgresql://herald:***@127.0.0.1:{port}/herald cannot be opened "
                           f'(connection failed: connection to server at "127.0.0.1", port {port} failed: '
                           "Connection refused"), line
    assert line.endswith("): start its server, or fix HERALD_DATABASE_URL."), line
    assert "s3cret" not in line


@pytest.mark.parametrize("command", [["worker"], ["beat"], ["web"]], ids=lambda command: command[0])
def test_a_redis_that_does_not_answer_is_one_line_at_start(tmp_path, command):
    port = free_port()
    result = herald(own_env(tmp_path, HERALD_REDIS_URL=f"redis://127.0.0.1:{port}/0"), *command, timeout=NEVER_STOPS)
    assert one_line(result) == (f"Redis at HERALD_REDIS_URL=redis://127.0.0.1:{port}/0 does not answer (Error 111 "
                                f"connecting to 127.0.0.1:{port}. Connection refused.): start it (`herald up` runs "
                                "one), or fix HERALD_REDIS_URL.")


def test_a_sqlite_database_in_a_missing_folder_is_refused_and_nothing_is_created(tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    result = herald(own_env(tmp_path, HERALD_DATABASE_URL=f"sqlite:///{missing}/herald.sqlite3"), "campaigns", "list")
    assert one_line(result) == (f"HERALD_DATABASE_URL names a SQLite database in {missing}, which does not exist: "
                                "create that folder, or fix HERALD_DATABASE_URL.")
    assert not (tmp_path / "nonexistent").exists()


def test_the_default_data_folder_is_still_made_by_itself(tmp_path):
    result = herald(own_env(tmp_path / "fresh clone"), "campaigns", "list")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fresh clone" / "data" / "herald.sqlite3").is_file()


def test_web_on_a_port_another_program_holds_is_one_line(tmp_path, redis_server):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = herald(own_env(tmp_path, HERALD_LISTEN=f"127.0.0.1:{port}", HERALD_REDIS_URL=redis_server.url), "web",
                        timeout=NEVER_STOPS)
    assert one_line(result) == (f"The web side cannot listen on 127.0.0.1:{port} (Address already in use): stop the "
                                "program that listens there, or set HERALD_LISTEN to a free address.")


def finished(command: list[str], env: dict[str, str], seconds: float = 120) -> subprocess.CompletedProcess[str]:
    """`herald COMMAND` run until it exits by itself; one still running after `seconds` is stopped, and fails."""
    process = subprocess.Popen([sys.executable, "-m", "worker.cli", *command], env=env, cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.terminate()
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"herald {command[0]} was still running after {seconds} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("command", [["up"], ["demo", "--invite-in", "1"]], ids=lambda command: command[0])
def test_up_and_demo_stop_when_the_web_cannot_listen_and_never_say_it_is_up(tmp_path, command):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = finished(command, own_env(tmp_path, HERALD_LISTEN=f"127.0.0.1:{port}"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (f"The web side cannot listen on 127.0.0.1:{port} (Address already in "
                                              "use): stop the program that listens there, or set HERALD_LISTEN to a "
                                              "free address.")
    assert "Herald is up" not in result.stdout and "Traceback" not in result.stderr
    assert not processes_with(str(tmp_path)), "a part of Herald outlived the failed start"


@pytest.mark.parametrize("command", [["up"], ["demo", "--invite-in", "1"]], ids=lambda command: command[0])
def test_up_and_demo_stop_everything_when_a_part_exits_at_once(tmp_path, command):
    """Worker and beat refuse another installation's Redis (test_installations.py): `herald up` and `herald demo`
    notice, stop the rest and exit 1 with one line naming the part and, for the demo, its reason from its log."""
    with redis_server(tmp_path / "redis") as server:
        redis.Redis.from_url(server.url).set(OWNER_KEY, "0123456789ab")
        result = finished(command, own_env(tmp_path, HERALD_REDIS_URL=server.url))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Herald is up" not in result.stdout and "Traceback" not in result.stderr
    assert not processes_with(str(tmp_path)), "a part of Herald outlived the failed start"
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'herald.sqlite3'}")
    with engine.connect() as connection:
        this = connection.scalar(select(Installation.id))
    engine.dispose()
    refusal = (f"Redis at HERALD_REDIS_URL={server.url} holds the work of Herald installation 0123456789ab, and this "
               f"is installation {this}: give each installation its own Redis, or its own database number "
               "(redis://host:6379/1)")
    last = result.stderr.splitlines()[-1]
    if command[0] == "demo":  # the children write to data/logs/: the demo's one line carries the reason
        assert last == one_line(result)
        assert last in (f"Herald did not start: the {part} exited at start (exit code 1): {refusal}; everything else "
                        "is stopped." for part in ("worker", "beat")), last
    else:  # the children print to the terminal: their line, then `herald up`'s
        assert f"{refusal}." in result.stderr
        assert last in (f"Herald did not start: the {part} exited at start (exit code 1) (its messages are above); "
                        "everything else is stopped." for part in ("worker", "beat")), last


def test_a_second_up_on_the_same_data_folder_stops_at_once(tmp_path):
    env = own_env(tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "worker.cli", "up"], env=env, cwd=PROJECT_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert any("Herald is up" in line for line in first.stdout), "the first `herald up` did not come up"
        result = herald(env, "demo", timeout=NEVER_STOPS)
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert one_line(result) == (f"Herald is already running with the data folder {tmp_path / 'data'}/ (another "
                                "`herald up` or `herald demo`): use that one, or stop it first.")

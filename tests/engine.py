"""A real Herald engine for tests: worker and beat as subprocesses, a real Redis, a real SMTP sink.

Nothing is mocked. The test process seeds subscribers, triggers campaigns through the `herald`
command, kills and restarts processes, and reads the outcome from the ledger and the sink's files.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import redis
from smtp_faults import FaultyOutbox, ScriptedSink
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from foundation.clock import OFFSET_FILE_ENV
from foundation.db import open_store
from foundation.settings import PROJECT_ROOT, Settings
from subscribers.importer import Options, import_csv
from subscribers.models import Subscriber
from subscribers.sample import write_csv
from subscribers.segments import segment_named, select_ids
from subscribers.topics import load_topics
from worker.campaigns import ledger
from worker.campaigns.models import Campaign

NEWSLETTER = "content/newsletters/2027-01-uia-transfer-networks"
FINAL = ("sent", "cancelled", "failed", "missed")


@dataclass
class Engine:
    settings: Settings
    env: dict[str, str]
    sink: ScriptedSink
    workdir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # ---- processes ---------------------------------------------------------------------------

    def start(self, name: str, *command: str) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "worker.cli", *command], env=self.env,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                                cwd=PROJECT_ROOT)

    def start_worker(self, concurrency: int = 2) -> None:
        self.start("worker", "worker", f"--concurrency={concurrency}")

    def start_beat(self) -> None:
        self.start("beat", "beat")

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group: the worker and its pool children die at once, mid-send."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self, name: str, seconds: float = 60) -> None:
        """SIGTERM to the process alone, as `docker stop` sends it: a worker's warm shutdown lets its batches end."""
        process = self.processes.pop(name)
        process.terminate()
        process.wait(seconds)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in list(self.processes.items()):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            del self.processes[name]

    def herald(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "worker.cli", *args], env=self.env, capture_output=True,
                                text=True, cwd=PROJECT_ROOT, timeout=120)
        assert result.returncode == 0, f"herald {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.workdir.glob("*.log")))

    # ---- state ---------------------------------------------------------------------------------

    @property
    def sessions(self) -> sessionmaker[Session]:
        return open_store(self.settings)

    def campaign(self, campaign_id: int) -> Campaign:
        with self.sessions() as session:
            return session.get(Campaign, campaign_id)

    def counts(self, campaign_id: int) -> dict[str, int]:
        with self.sessions() as session:
            return ledger.counts(session, campaign_id)

    def wait_for(self, what: str, condition: Callable[[], bool], seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"waited {seconds} s for {what}\n{self.logs()}")

    def wait_state(self, campaign_id: int, *states: str, seconds: float = 120) -> Campaign:
        self.wait_for(f"campaign {campaign_id} to be {' or '.join(states)}",
                      lambda: getattr(self.campaign(campaign_id), "state", None) in states, seconds)
        return self.campaign(campaign_id)

    def send(self, *args: str) -> int:
        """`herald send --yes …` (a script's way: no question); returns the campaign's id."""
        output = self.herald("send", "--yes", *args).stdout
        return int(output.split("Campaign ", 1)[1].split(":", 1)[0])

    def a_third_sent(self, people: int, seed_value: int) -> tuple[int, dict[str, Subscriber]]:
        """`people` seeded, worker and beat started, the newsletter sent to everyone: (its id, the mailable), once a
        third of them received it."""
        seed(self.settings, people, seed_value=seed_value)
        expected = self.mailable()
        self.start_worker()
        self.start_beat()
        campaign_id = self.send(NEWSLETTER, "--segment", "all-subscribers")
        self.wait_for("a third sent", lambda: self.received_count(campaign_id) >= len(expected) // 3)
        return campaign_id, expected

    def set_clock(self, offset_seconds: float) -> None:
        Path(self.env[OFFSET_FILE_ENV]).write_text(str(offset_seconds), encoding="ascii")

    # ---- what arrived --------------------------------------------------------------------------

    def received(self, campaign_id: int) -> list[EmailMessage]:
        """What the sink holds of one campaign (by its Feedback-ID), parsed."""
        messages = (email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                    for path in sorted(self.settings.outbox_dir.glob("*.eml")))
        return [message for message in messages if message["Feedback-ID"].startswith(f"campaign-{campaign_id}:")]

    def received_count(self, campaign_id: int) -> int:
        prefix = f"Feedback-ID: campaign-{campaign_id}:".encode()
        return sum(prefix in path.read_bytes() for path in self.settings.outbox_dir.glob("*.eml"))

    def mailable(self, segment: str = "all-subscribers") -> dict[str, Subscriber]:
        """The segment's mailable members now, by lower-cased address."""
        with self.sessions() as session:
            ids = list(session.scalars(select_ids(segment_named(self.settings.content_dir, segment))))
            people = session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))
            return {person.email.lower(): person for person in people}


def seed(settings: Settings, count: int, seed_value: int = 2027, consent: bool = True) -> None:
    """`count` fictional subscribers through the real importer (languages ro, en and both).

    With `consent`, the file's consent column counts (a few said no and stay pending); without, all are pending.
    """
    path = settings.data_dir / "people.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, count, seed_value)
    import_csv(open_store(settings), path, load_topics(settings.content_dir), settings.secret_key,
               Options(now=datetime.now(UTC), consent_source="test fixture (fictional people)" if consent else None))


def recipients(messages: list[EmailMessage]) -> Counter[str]:
    return Counter(str(message["To"].addresses[0].addr_spec).lower() for message in messages)


@contextmanager
def running_engine(settings: Settings, redis_url: str, workdir: Path, **overrides: str) -> Iterator[Engine]:
    """Settings on the test's database; a scripted sink; env for the subprocesses; everything stopped after."""
    redis.Redis.from_url(redis_url).flushall()  # no task of an earlier test reaches this one's workers
    with ScriptedSink(settings.outbox_dir) as sink:
        env = dict(os.environ, HERALD_DATABASE_URL=settings.database_url, HERALD_REDIS_URL=redis_url,
                   HERALD_SMTP_URL=sink.url, HERALD_DATA_DIR=str(settings.data_dir),
                   HERALD_OUTBOX_DIR=str(settings.outbox_dir), HERALD_CONTENT_DIR=str(settings.content_dir),
                   HERALD_SECRET_KEY=settings.secret_key, HERALD_SWEEP_SECONDS="1", HERALD_LEASE_SECONDS="3",
                   HERALD_RETRY_BASE_SECONDS="0.3", HERALD_RETRY_MAX_SECONDS="1", HERALD_BATCH_SIZE="50",
                   HERALD_PAUSE_AFTER_FAILURES="1000", HERALD_BASE_URL="https://herald.example.org")
        env[OFFSET_FILE_ENV] = str(workdir / "clock-offset")
        env.update(overrides)
        engine = Engine(settings, env, sink, workdir)
        try:
            yield engine
        finally:
            engine.stop_all()


def faulty(engine: Engine) -> FaultyOutbox:
    return engine.sink.handler

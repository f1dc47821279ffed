"""README's first command, `herald demo`, and `herald up`: everything on one machine, and nothing left running."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path

from processes import processes_with
from servers import free_port

from foundation.settings import PROJECT_ROOT
from worker.commands.local_parts import answers


def embedded_env(tmp_path: Path) -> tuple[dict[str, str], tuple[str, str, str]]:
    """The embedded defaults, on free ports and in the test's folder: (environment, (redis, smtp, web) URLs)."""
    urls = (f"redis://127.0.0.1:{free_port()}/0", f"smtp://127.0.0.1:{free_port()}?security=none",
            f"http://127.0.0.1:{free_port()}")
    env = dict(os.environ, HERALD_DATA_DIR=str(tmp_path / "data"), HERALD_OUTBOX_DIR=str(tmp_path / "outbox"),
               HERALD_REDIS_URL=urls[0], HERALD_SMTP_URL=urls[1], HERALD_BASE_URL=urls[2],
               HERALD_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'herald.sqlite3'}", HERALD_API_TOKEN="t",
               HERALD_SWEEP_SECONDS="1", COLUMNS="200")
    return env, urls


def test_the_demo_imports_sends_schedules_and_leaves_the_messages_in_the_outbox(tmp_path):
    env, urls = embedded_env(tmp_path)
    result = subprocess.run([sys.executable, "-m", "worker.cli", "demo", "--invite-in", "3"], env=env,
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr

    with (PROJECT_ROOT / "content" / "subscribers.sample.csv").open(encoding="utf-8") as sample:
        consent = Counter(row["Acord GDPR"] for row in csv.DictReader(sample))
    assert re.search(rf"all-subscribers\s+│\s+{consent['Da']}\s", result.stdout), "the segments, counted"
    messages = sorted((tmp_path / "outbox").glob("*.eml"))
    headers = [BytesHeaderParser().parsebytes(path.read_bytes()) for path in messages]
    kinds = Counter(message["Feedback-ID"].split(":")[1] for message in headers)
    # The confirmed get the newsletter and the invitation; the pending, a request to confirm.
    assert kinds == {"newsletter": consent["Da"], "invitation": consent["Da"], "confirmation": consent["Nu"]}
    assert len({message["To"] for message in headers}) == consent["Da"] + consent["Nu"]
    index = (tmp_path / "outbox" / "index.html").read_text(encoding="utf-8")
    assert all(path.name in index for path in messages)
    assert "outbox/index.html" in " ".join(result.stdout.split())
    for url in urls:
        assert not answers(url), f"{url} still answers after the demo"
    assert not processes_with(str(tmp_path)), "a process of the demo outlived it"


def test_up_serves_until_ctrl_c_then_stops_everything(tmp_path):
    env, urls = embedded_env(tmp_path)
    up = subprocess.Popen([sys.executable, "-m", "worker.cli", "up"], env=env, cwd=PROJECT_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not all(answers(url) for url in urls):
            assert up.poll() is None and time.monotonic() < deadline, "herald up did not come up"
            time.sleep(0.2)
        request = urllib.request.Request(f"{urls[2]}/api/campaigns", headers={"Authorization": "Bearer t"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == []
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "nothing is left running" in output
    for url in urls:
        assert not answers(url), f"{url} still answers after Ctrl-C"
    assert not processes_with(str(tmp_path)), "a child of herald up outlived it"

"""README's first command, `herald demo`: the whole main job on embedded defaults, and nothing left running."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections import Counter
from email.parser import BytesHeaderParser

from servers import free_port

from worker.services import answers
from worker.settings import PROJECT_ROOT


def test_the_demo_imports_sends_schedules_and_leaves_the_messages_in_the_outbox(tmp_path):
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    smtp_url = f"smtp://127.0.0.1:{free_port()}?security=none"
    web_url = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ, HERALD_DATA_DIR=str(tmp_path / "data"), HERALD_OUTBOX_DIR=str(tmp_path / "outbox"),
               HERALD_REDIS_URL=redis_url, HERALD_SMTP_URL=smtp_url, HERALD_BASE_URL=web_url,
               HERALD_SWEEP_SECONDS="1", HERALD_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'herald.sqlite3'}",
               COLUMNS="200")
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
    for url in (redis_url, smtp_url, web_url):
        assert not answers(url), f"{url} still answers after the demo"

"""Stage 1 vs stage 2 cost: how long one MJML compilation takes, and one recipient's personalisation.

    .venv/bin/python bench/render_bench.py [--recipients 20000] [--runs 5]

Prints, for the largest shipped newsletter and invitation, the median (min–max) of `--runs` runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from datetime import UTC, datetime

from foundation.settings import load_settings
from worker.authoring.content import find_items, load_item
from worker.delivery.mime import Skeleton, message_id
from worker.rendering.render import Recipient, Renderer


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def summary(samples: list[float], scale: float, unit: str) -> str:
    values = sorted(s * scale for s in samples)
    return f"{statistics.median(values):.3f} {unit} (min {values[0]:.3f}, max {values[-1]:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    now = datetime.now(UTC)
    renderer = Renderer(settings)
    items = [load_item(path) for path in find_items(settings.content_dir)]
    recipients = [Recipient(email=f"person{n}@example.org", name=f"Persoana {n}",
                            timezone=("Europe/Lisbon", "Europe/Bucharest", "Europe/Vilnius")[n % 3],
                            links={p: f"{settings.base_url}/{p}/{n:08d}abcdef" for p in ("view", "unsubscribe", "preferences", "rsvp_yes", "rsvp_no", "rsvp_maybe")})
                  for n in range(args.recipients)]
    for kind, message in (("newsletter", "newsletter"), ("event", "invitation")):
        item = max((i for i in items if i.kind == kind), key=lambda i: sum(len(t.intro) for t in i.texts.values()))
        compile_times = [timed(lambda: renderer.compile(item, "both", message)) for _ in range(args.runs)]
        compiled = renderer.compile(item, "both", message)
        size = len(compiled.personalise(recipients[0]).html.encode()) / 1024
        fill = [timed(lambda: [compiled.personalise(r) for r in recipients]) / len(recipients) for _ in range(args.runs)]
        skeleton = Skeleton.prepare(compiled, settings, feedback_id=f"bench:{message}:both")
        # Each message is dropped once built, as a sender does; keeping thousands measures page faults.
        eml = [timed(lambda: deque((skeleton.build(r, message_id=message_id(skeleton.domain), sent_at=now)
                                    for r in recipients), maxlen=0)) / len(recipients) for _ in range(args.runs)]
        print(f"{item.slug} ({message}, both, {size:.0f} KB HTML)")
        print(f"  stage 1 compile (Jinja2 + MRML):     {summary(compile_times, 1e3, 'ms')}")
        print(f"  stage 2 personalise, per recipient:  {summary(fill, 1e6, 'µs')}")
        print(f"  skeleton .eml build, per recipient:  {summary(eml, 1e6, 'µs')}")


if __name__ == "__main__":
    main()

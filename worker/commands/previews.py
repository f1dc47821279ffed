"""The files `herald render` and a dry run write for a sample recipient: each edition's HTML, text and the complete
.eml, with an event message's calendar and its DKIM signatures, the same bytes a subscriber would get."""

from __future__ import annotations

from pathlib import Path

from foundation.settings import Settings
from worker.authoring.content import Item
from worker.delivery.dkim import signer_for
from worker.delivery.mime import build_eml
from worker.events.event_calendar import preview_calendar
from worker.rendering.render import Renderer, sample_recipient


def write_rendered(item: Item, renderer: Renderer, editions: list[str], messages: list[str],
                   out: Path, settings: Settings) -> list[tuple[str, str, Path]]:
    """Render `item` for the sample recipient into out/<slug>/; returns (message, edition, .eml path)."""
    recipient, dkim = sample_recipient(settings), signer_for(settings)
    folder = out / item.slug
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for message in messages:
        for edition in editions:
            compiled = renderer.compile(item, edition, message)
            rendered = compiled.personalise(recipient)
            stem = folder / f"{message}.{edition}"
            Path(f"{stem}.html").write_text(rendered.html, encoding="utf-8")
            Path(f"{stem}.txt").write_text(rendered.text, encoding="utf-8")
            calendar = preview_calendar(item, compiled.language, message, settings)
            Path(f"{stem}.eml").write_bytes(dkim.sign(build_eml(compiled, recipient, settings, calendar=calendar,
                                                                feedback_id=f"render:{message}:{edition}")))
            written.append((message, edition, stem))
    return written

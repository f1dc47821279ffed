"""Every template, in every edition, rendered by MRML and shown in Chromium at desktop and phone widths.

Screenshots go to <artifacts>/screenshots/<message>-<slug>-<edition>-<width>.png (artifacts:
$HERALD_ARTIFACTS_DIR, else tests/artifacts) for a person to look at; the assertions check what a
reader and a mail client rely on: the document's language, no sideways scrolling on a phone, alt
text on every image, the title actually shown, and a screenshot that is more than a blank page.
"""

from __future__ import annotations

import pytest
from browser import (
    artifacts_dir,
    load,
    normalise_space,
    open_page,
    page_facts,
    screenshot,
)
from PIL import Image

from foundation.settings import load_settings
from worker.authoring.content import EventMeta
from worker.rendering.render import EDITIONS, MESSAGES, sample_recipient

TEMPLATES = tuple(message for messages in MESSAGES.values() for message in messages)
WIDTHS = (600, 375)  # the body's width in base.mjml.j2, and a common phone
OVERFLOW_TOLERANCE_PX = 1  # sub-pixel rounding of scrollWidth
MIN_HEIGHT_PX = 600  # the shortest message (a reminder) is well over this at either width
MAX_DOMINANT_COLOUR = 0.90  # share of the pixels the commonest colour may cover
MIN_COLOURS = 16


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("edition", tuple(EDITIONS))
@pytest.mark.parametrize("message", TEMPLATES)
def test_rendered_email_in_browser(browser, template_sample, message, edition, width):
    item, compiled = template_sample(message, edition)
    html = compiled.personalise(sample_recipient(load_settings())).html
    path = artifacts_dir("screenshots") / f"{message}-{item.slug}-{edition}-{width}.png"
    with open_page(browser, width) as page:
        load(page, html)
        facts = page_facts(page)
        screenshot(page, path)

    texts = [item.text(language) for language in EDITIONS[edition]]
    expected_lang = texts[0].language  # ro for "both"; a stand-in's language if the item lacks one
    assert facts["lang"] == expected_lang == compiled.language

    block_langs = {text.language for text in texts}
    assert set(facts["langs"]) == block_langs, "every block's text is marked with its own language, and only those"

    assert facts["scrollWidth"] <= width + OVERFLOW_TOLERANCE_PX, (
        f"the page scrolls sideways at {width}px: scrollWidth is {facts['scrollWidth']}px")

    missing_alt = [image["src"] for image in facts["images"] if not (image["alt"] or "").strip()]
    assert not missing_alt, f"images without alt text: {missing_alt}"

    assert facts["title"] == compiled.subject
    for text in texts:
        heading = text.front.title if isinstance(item.meta, EventMeta) else text.front.subject
        assert normalise_space(heading) in facts["text"], (
            f"the {text.language} title {heading!r} is not shown in the body (only in <title>, which "
            f"many clients hide)")

    with Image.open(path) as shot:
        rgb = shot.convert("RGB")
        assert rgb.width == width, f"the screenshot is {rgb.width}px wide, the viewport {width}px"
        assert rgb.height > MIN_HEIGHT_PX, f"the rendered email is only {rgb.height}px tall"
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height)
        commonest = max(count for count, _ in colours)
        assert len(colours) >= MIN_COLOURS, f"only {len(colours)} colours: an (almost) blank page"
        assert commonest / (rgb.width * rgb.height) < MAX_DOMINANT_COLOUR, "one colour covers nearly everything"

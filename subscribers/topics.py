"""The topics catalogue, `content/topics.yaml`: slugs that segments and imports use, names in both languages."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foundation.languages import LANGUAGES, read_text
from foundation.problems import ContentInvalid, Problem
from foundation.yamldoc import parse_or_report
from subscribers.profile import Invalid, fold

TOPICS_FILE = "topics.yaml"
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Topic:
    slug: str
    names: dict[str, str]  # language -> name


def load_topics(content_dir: Path) -> dict[str, Topic]:
    """Every topic, in file order; raises ContentInvalid with file:line for each mistake."""
    path = content_dir / TOPICS_FILE
    if not path.exists():
        raise ContentInvalid([Problem(path, 1, "the topics catalogue is missing; create it (see content/README.md)")])
    text, problems = read_text(path)
    doc = parse_or_report(path, text, 1, problems)
    topics: dict[str, Topic] = {}
    if doc is not None and not isinstance(doc.data, dict):
        problems.append(Problem(path, 1, "expected one 'slug:' entry per topic, each with 'ro:' and 'en:' names"))
    elif doc is not None:
        for slug, names in doc.data.items():
            line = doc.line_of((slug,))
            if not isinstance(slug, str) or not _SLUG.match(slug):
                problems.append(Problem(path, line, f"'{slug}' is not a topic slug; use lower-case words joined by '-'"))
            elif not isinstance(names, dict) or set(names) != set(LANGUAGES) or not all(
                    isinstance(name, str) and name.strip() for name in names.values()):
                problems.append(Problem(path, line, f"topic '{slug}' needs exactly a 'ro:' and an 'en:' name"))
            else:
                topics[slug] = Topic(slug, {language: names[language].strip() for language in LANGUAGES})
    if any(not problem.fixable for problem in problems):
        raise ContentInvalid(problems)
    return topics


def topic_matcher(topics: dict[str, Topic]) -> Callable[[str], str]:
    """`match(label) -> slug`: a slug or either name, whatever the case and diacritics."""
    labels = {fold(slug): slug for slug in topics}
    for topic in topics.values():
        labels.update({fold(name): topic.slug for name in topic.names.values()})

    def match(label: str) -> str:
        try:
            return labels[fold(label)]
        except KeyError:
            raise Invalid(f"'{label.strip()}' is not a topic; use a slug or name from content/topics.yaml "
                          f"({', '.join(topics)})") from None

    return match

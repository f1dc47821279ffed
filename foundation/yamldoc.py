"""YAML as an editor means it, with the line of every value kept for error messages.

PyYAML follows YAML 1.1, where `10:00` is the number 600 and the country `NO` is false.
Editors write agenda times and country codes, so only YAML 1.2 core scalars are resolved here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from foundation.problems import Problem


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", list("-+.0123456789")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:timestamp", r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", list("0123456789")),
]:
    _Loader.add_implicit_resolver(tag, re.compile(pattern), first)


def _date_or_text(loader: _Loader, node: yaml.ScalarNode) -> object:
    """`2027-02-30` stays text rather than ending the whole load with "day is out of range for month": the
    content's validation then says which day the month lacks, at its line, beside every other problem."""
    try:
        return loader.construct_yaml_timestamp(node)
    except (ValueError, AttributeError):  # AttributeError: an explicit !!timestamp PyYAML's pattern does not match
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _date_or_text)


@dataclass(frozen=True)
class YamlDoc:
    data: Any
    root: yaml.Node | None
    first_line: int  # line of the file where this YAML text starts (front matter starts below `---`)

    def line_of(self, loc: tuple[str | int, ...]) -> int:
        """The file line of the value at `loc`, or of the closest enclosing value that exists."""
        node = self.root
        line = node.start_mark.line if node is not None else 0
        for key in loc:
            child = _child(node, key)
            if child is None:
                break
            node, line = child
        return self.first_line + line


def _child(node: yaml.Node | None, key: str | int) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(key):
                return value_node, key_node.start_mark.line
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        child = node.value[key]
        return child, child.start_mark.line
    return None


def parse_yaml(text: str, first_line: int = 1) -> YamlDoc:
    """Parse `text`; raises yaml.MarkedYAMLError whose mark is relative to `text`."""
    root = yaml.compose(text, Loader=_Loader)
    data = _Loader(text).get_single_data() if root is not None else None
    return YamlDoc(data=data, root=root, first_line=first_line)


def parse_or_report(path: Path, text: str, first_line: int, problems: list[Problem]) -> YamlDoc | None:
    try:
        return parse_yaml(text, first_line)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = first_line + (mark.line if mark else 0)
        problems.append(Problem(path, line, f"YAML syntax: {error.problem or error.context}; "
                                "check indentation, and quote text that contains ': ' or starts with a symbol"))
        return None

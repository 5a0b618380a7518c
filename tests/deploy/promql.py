"""Just enough PromQL reading to list the series and labels an expression uses: the metric names
(not functions, keywords, label values or durations) and the label matchers next to them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"(?<![\w$])({_IDENT})\s*\{{([^}}]*)\}}")
_MATCHER = re.compile(rf"({_IDENT})\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_RANGE = re.compile(r"\[[^\]]*\]")
_TOKEN = re.compile(rf"(?<![\w$.:]){_IDENT}(?![\w:])(?!\s*\()")
# A duration's unit after a number (5m), not the digits and letters inside a name (rate5m).
_NUMBER_SUFFIX = re.compile(r"(?<![\w:])(\d+)[a-zA-Z_]+")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


@dataclass(frozen=True)
class Selector:
    """A metric name with the label matchers written next to it."""

    metric: str
    matchers: dict[str, tuple[str, str]]  # label -> (operator, value)


def selectors(expr: str) -> list[Selector]:
    """Every ``name{...}`` in the expression, with its matchers."""
    found = []
    for name, body in _SELECTOR.findall(expr):
        matchers = {
            label: (operator, value[1:-1]) for label, operator, value in _MATCHER.findall(body)
        }
        found.append(Selector(name, matchers))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_* clauses."""
    without_strings = _STRING.sub('""', expr)
    return {
        label.strip()
        for _, labels in _GROUPING.findall(without_strings)
        for label in labels.split(",")
        if label.strip()
    }


def metric_names(expr: str) -> set[str]:
    """Series names the expression reads."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _NUMBER_SUFFIX.sub(r"\1", text)
    return {token for token in _TOKEN.findall(text) if token.lower() not in _KEYWORDS}

"""JSON with a bounded nesting depth, for every body FrameOps parses.

Python's parser recurses once per level: 100,000 nested ``[`` raise RecursionError deep in
a request, and a few thousand levels that still parse cost the next walk over the value.
FrameOps' own payloads nest at most 4 levels (a job event's ``gpus`` list of objects), so
anything deeper than ``MAX_JSON_DEPTH`` (default 32) is refused as a client error that
names the limit.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings


class JsonTooDeep(ValueError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"JSON nested deeper than {limit} levels (MAX_JSON_DEPTH)")


def json_depth_limit() -> int:
    return int(getattr(settings, "MAX_JSON_DEPTH", 32))


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed value nests deeper than ``limit`` arrays and objects (iterative:
    checking a deep value must not itself recurse)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def json_loads_bounded(text: str | bytes, *, limit: int | None = None) -> Any:
    """``json.loads`` that raises JsonTooDeep past the depth limit; other malformed input
    raises ValueError as ``json.loads`` does."""
    limit = json_depth_limit() if limit is None else limit
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(limit) from None
    # No value nests deeper than the brackets its text opens (brackets inside strings only
    # add to the count): most bodies need no walk at all.
    opened = (
        text.count("{") + text.count("[")
        if isinstance(text, str)
        else (text.count(b"{") + text.count(b"["))
    )
    if opened > limit and isinstance(value, dict | list) and json_depth_exceeds(value, limit):
        raise JsonTooDeep(limit)
    return value

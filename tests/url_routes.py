"""Every route of the URL configuration, with example arguments, so that tests cover each
endpoint and a new one cannot be added without the tests seeing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str  # namespace:name
    pattern: str  # as written in the URL configuration
    callback: Any

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/v1/")


def _walk(patterns: list[Any], prefix: str, namespace: str) -> list[Route]:
    routes: list[Route] = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            routes += _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else str(entry.name)
            routes.append(Route(name, prefix + str(entry.pattern), entry.callback))
    return routes


def routes(*, include_admin: bool = False) -> list[Route]:
    found = _walk(get_resolver().url_patterns, "", "")
    if not include_admin:
        found = [r for r in found if not r.name.startswith("admin:")]
    return found


def route_path(route: Route, values: dict[str, str]) -> str:
    """The route's path with each ``<converter:name>`` replaced by ``values[name]``."""
    import re

    def value(match: re.Match[str]) -> str:
        return values[match.group(2)]

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", value, route.pattern)

"""Cursor pages: one shape for every list that pages (``next``, ``previous``, ``results``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.pagination import CursorPagination


def cursor_pagination(
    *, ordering: str, page_size: int, max_page_size: int
) -> type[CursorPagination]:
    return type(
        "Pagination",
        (CursorPagination,),
        {"ordering": ordering, "page_size": page_size, "max_page_size": max_page_size,
         "page_size_query_param": "page_size"},
    )  # fmt: skip


def page_serializer(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of a page of ``item``: URLs of the pages around it (null at the ends)."""
    fields: dict[str, Any] = {
        "next": serializers.URLField(allow_null=True, help_text="The next page; null at the end."),
        "previous": serializers.URLField(allow_null=True),
        "results": item(many=True),
    }
    return type(name, (serializers.Serializer,), fields)

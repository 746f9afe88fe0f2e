"""The API's JSON parser: DRF's, with the nesting bound of ``finops.ops.json_bounds``."""

from __future__ import annotations

import codecs
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from finops.ops.json_bounds import JsonTooDeep, json_loads_bounded


class JsonTooDeepError(ParseError):
    default_code = "too_deep"


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json_loads_bounded(text)
        except JsonTooDeep as exc:
            raise JsonTooDeepError(
                f"JSON parse error: the body nests deeper than {exc.limit} levels "
                f"(MAX_JSON_DEPTH={exc.limit})."
            ) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc

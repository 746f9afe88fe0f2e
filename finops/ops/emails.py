"""E-mail templates come in triplets: ``emails/NAME-subject.txt``, ``emails/NAME-body.txt``
and ``emails/NAME-body.html``, rendered together by one function from one context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def email_render(name: str, context: dict[str, Any]) -> Rendered:
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    return Rendered(
        subject=subject,
        text=render_to_string(f"emails/{name}-body.txt", context),
        html=render_to_string(f"emails/{name}-body.html", context),
    )

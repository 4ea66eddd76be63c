"""What an HTTP-facing service returns; the function maps it onto func.HttpResponse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, JSON body (or text) and content type."""

    status: int
    body: Mapping[str, Any] | str
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def error(status: int, message: str, **extra: Any) -> Reply:  # noqa: ANN401  # JSON values
    """A JSON error body ``{"error": message, ...}``."""
    return Reply(status, {"error": message, **extra})

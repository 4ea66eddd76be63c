"""OData query options for GET /users: $filter (the subset Graph supports without advanced queries
that the licensing app uses), $top and the $skiptoken that carries the page position."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import NoReturn

from licensing.dev.tenant.model import GraphError, User, is_guid

UNSUPPORTED = "Request_UnsupportedQuery"
DEFAULT_TOP = 100
MAX_TOP = 999

Predicate = Callable[[User], bool]

_ANY_SKU = re.compile(
    r"^assignedLicenses/any\(\s*(\w+)\s*:\s*\1/skuId\s+eq\s+('?)([0-9a-fA-F-]{36})\2\s*\)$", re.IGNORECASE
)
_EQ = re.compile(r"^(\w+)\s+eq\s+(true|false|null|'(?:[^']|'')*')$", re.IGNORECASE)
_STRING_PROPERTIES: dict[str, Callable[[User], str | None]] = {
    "id": lambda u: u.id,
    "userprincipalname": lambda u: u.user_principal_name,
    "displayname": lambda u: u.display_name,
    "mail": lambda u: u.mail,
    "usagelocation": lambda u: u.usage_location,
    "department": lambda u: u.department,
    "jobtitle": lambda u: u.job_title,
    "companyname": lambda u: u.company_name,
    "employeetype": lambda u: u.employee_type,
    "country": lambda u: u.country,
}


def parse_top(raw: str | None) -> int:
    """$top, 1..999; Graph refuses anything else outright rather than capping it."""
    if raw is None:
        return DEFAULT_TOP
    try:
        top = int(raw)
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for $top query option found.") from None
    if not 1 <= top <= MAX_TOP:
        raise GraphError(
            400, UNSUPPORTED, f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
        )
    return top


def skiptoken(offset: int) -> str:
    """An opaque page token for the position ``offset`` in the tenant's listing order (where the page starts)."""
    return base64.urlsafe_b64encode(f"emulator:{offset}".encode()).decode().rstrip("=")


def offset_of(token: str | None) -> int:
    """The position a $skiptoken stands for (0 without one)."""
    if token is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    prefix, _, number = text.partition(":")
    if prefix == "emulator" and number.isdigit():
        return int(number)
    raise GraphError(
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    )


def compile_filter(raw: str | None) -> Predicate:
    """$filter as a predicate over users; clauses joined by ``and`` are supported."""
    if raw is None or not raw.strip():
        return lambda _: True
    clauses = [_clause(part.strip()) for part in _split_and(raw.strip())]
    return lambda user: all(clause(user) for clause in clauses)


def _clause(text: str) -> Predicate:
    any_sku = _ANY_SKU.match(text)
    if any_sku:
        if any_sku.group(2):  # a quoted GUID: OData refuses to compare Edm.Guid with Edm.String
            raise GraphError(
                400,
                "BadRequest",
                "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and "
                "'Edm.String' for operator kind 'Equal'.",
            )
        sku_id = any_sku.group(3).lower()
        return lambda user: bool(user.holds(sku_id))
    eq = _EQ.match(text)
    if eq is None:
        prop = re.match(r"^(\w+(?:/\w+)?)", text)
        _unsupported(prop.group(1) if prop else None)
    name, literal = eq.group(1).lower(), eq.group(2)
    if name == "accountenabled":
        if literal.lower() not in {"true", "false"}:
            _unsupported("accountEnabled")
        wanted = literal.lower() == "true"
        return lambda user: user.account_enabled is wanted
    getter = _STRING_PROPERTIES.get(name)
    if getter is None:
        _unsupported(eq.group(1))
    if literal.lower() == "null":
        return lambda user: getter(user) is None
    if not literal.startswith("'"):
        _unsupported(eq.group(1))
    value = literal[1:-1].replace("''", "'").lower()
    if name == "id" and not is_guid(value):
        return lambda _: False
    return lambda user: (getter(user) or "").lower() == value


def _unsupported(prop: str | None) -> NoReturn:
    if prop is None:
        raise GraphError(400, "BadRequest", "Invalid filter clause")
    raise GraphError(
        400,
        UNSUPPORTED,
        f"Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'.",
    )


def _split_and(text: str) -> list[str]:
    """Split on `` and `` outside quoted literals."""
    parts: list[str] = []
    current: list[str] = []
    quoted, i = False, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        if not quoted and text[i : i + 5].lower() == " and ":
            parts.append("".join(current))
            current, i = [], i + 5
            continue
        current.append(char)
        i += 1
    parts.append("".join(current))
    return parts

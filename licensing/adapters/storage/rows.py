"""Table rows <-> our records: the LicenseStatus and LicenseEvents columns, keys Table storage accepts, newest-first
RowKeys, and how the table SDK's errors become ours (``transient``)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from licensing.core.errors import TransientError
from licensing.core.records import AuditEvent, StatusRecord

STATUS_TABLE = "LicenseStatus"  # re-exported by account.py; here so counters.py can read it without a cycle
_MAX_TICKS = 10**19  # audit RowKeys count down from here, so a partition lists newest first
MAX_TEXT = 4000  # characters of a reason or detail kept (a table property holds 32 K characters)
MAX_REQUEST = 32 * 1024 - 1  # characters: a string property holds 64 KiB (UTF-16); a message is at most 32 KiB


@contextmanager
def transient(what: str) -> Iterator[None]:
    """Storage failures (throttling, timeouts, 5xx) as TransientError; a missing or existing entity as itself."""
    try:
        yield
    except (ResourceExistsError, ResourceNotFoundError):
        raise
    except AzureError as exc:
        raise TransientError(f"storage failed to {what}: {type(exc).__name__}") from exc


async def entity_or_none(table: TableClient, partition: str, row: str) -> Any:  # noqa: ANN401  # a TableEntity
    """One row, or None when there is none."""
    try:
        return await table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None


def newest_first(at: datetime) -> str:
    """A RowKey prefix that sorts later times first (20 digits counting down from 10**19 microseconds)."""
    return f"{_MAX_TICKS - int(at.timestamp() * 1_000_000):020d}"


def table_key(value: str) -> str:
    """A PartitionKey/RowKey-safe form: / \\ # ? % and control characters are percent-encoded."""
    return "".join(
        f"%{ord(ch):02X}" if ch in "/\\#?%" or ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in value[:400]
    )


def status_entity(record: StatusRecord) -> dict[str, Any]:
    """The LicenseStatus row of a status; the outcome's own time column (AssignedAt, LastErrorAt...) too."""
    entity: dict[str, Any] = {
        "PartitionKey": table_key(record.user_key),
        "RowKey": table_key(record.sku),
        "UserPrincipalName": record.user_principal_name,
        "Outcome": record.outcome,
        "Reason": record.reason[:MAX_TEXT],
        "RequestId": record.request_id,
        "Source": record.source,
        "Rule": record.rule,
        "DisabledPlans": ",".join(record.disabled_plans),
        "PlanStatuses": json.dumps(dict(record.plan_statuses), sort_keys=True),
        "Attempts": record.attempts,
        "UpdatedAt": record.updated_at,
        # Always written (rows are merged): a row that is no longer blocked drops the request it kept.
        "Request": record.request if len(record.request) <= MAX_REQUEST else "",  # cut JSON is no request
    }
    if record.plan_source:
        entity["PlanSource"] = record.plan_source
    if record.outcome in {"assigned", "verified", "removed"}:
        entity[f"{record.outcome.capitalize()}At"] = record.updated_at
    if record.outcome in {"failed", "blocked", "rejected"}:
        entity["LastError"], entity["LastErrorAt"] = record.reason[:MAX_TEXT], record.updated_at
    return entity


_WRITE_IDENTITY = ("RequestId", "UpdatedAt", "Outcome", "Attempts", "Reason")


def same_write(entity: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether the stored row ``current`` is the write ``entity`` (same request, time, outcome, attempt and
    reason): after a lost response, the write that went in. A duplicate delivery of the same message writing
    the same record looks the same; the per-user lease keeps two from running at once."""
    return all(current.get(column) == entity.get(column) for column in _WRITE_IDENTITY)


def failure_index_row(partition: str, record: StatusRecord) -> dict[str, Any]:
    """The failure index row (table StatusIndex) of a status row that became a failure: newest first, and one
    row per status row and time, so writing the same failure again (a reconcile) is idempotent."""
    digest = hashlib.sha256(f"{table_key(record.user_key)}/{table_key(record.sku)}".encode()).hexdigest()[:16]
    return {
        "PartitionKey": partition,
        "RowKey": f"{newest_first(record.updated_at)}-{digest}",
        "User": record.user_key,
        "Sku": record.sku,
        "Outcome": record.outcome,
        "At": record.updated_at,
    }


def event_entity(event: AuditEvent) -> dict[str, Any]:
    """The LicenseEvents row of an audit event; RowKeys sort newest first within a user."""
    entity: dict[str, Any] = {
        "PartitionKey": table_key(event.user_key),
        "RowKey": f"{newest_first(event.at)}-{uuid.uuid4().hex[:12]}",
        "Kind": event.kind,
        "RequestId": event.request_id,
        "Source": event.source,
        "Sku": event.sku,
        "Rule": event.rule,
        "Detail": event.detail[:MAX_TEXT],
        "At": event.at,
    }
    if event.before is not None:
        entity["DisabledBefore"] = ",".join(event.before)
    if event.after is not None:
        entity["DisabledAfter"] = ",".join(event.after)
    return entity


def status_from_entity(e: Mapping[str, Any]) -> StatusRecord:
    """A LicenseStatus row (all columns or a ``select``ed few) as a status; missing columns read as empty."""
    return StatusRecord(
        user_key=unquote(e["PartitionKey"]),
        sku=unquote(e["RowKey"]),
        user_principal_name=e.get("UserPrincipalName", ""),
        outcome=e.get("Outcome", "failed"),
        reason=e.get("Reason", ""),
        request_id=e.get("RequestId", ""),
        source=e.get("Source", ""),
        rule=e.get("Rule", ""),
        disabled_plans=_split(e.get("DisabledPlans")),
        plan_statuses=json.loads(e.get("PlanStatuses") or "{}"),
        attempts=int(e.get("Attempts", 0)),
        updated_at=e.get("UpdatedAt") or datetime.min.replace(tzinfo=UTC),
        plan_source=e.get("PlanSource", ""),
        request=e.get("Request", ""),
    )


def event_from_entity(user_key: str, e: Mapping[str, Any]) -> AuditEvent:
    """A LicenseEvents row as an audit event."""
    return AuditEvent(
        user_key=user_key,
        kind=e["Kind"],
        request_id=e.get("RequestId", ""),
        source=e.get("Source", ""),
        sku=e.get("Sku", ""),
        before=_split(e["DisabledBefore"]) if "DisabledBefore" in e else None,
        after=_split(e["DisabledAfter"]) if "DisabledAfter" in e else None,
        rule=e.get("Rule", ""),
        detail=e.get("Detail", ""),
        at=e.get("At") or datetime.min.replace(tzinfo=UTC),
    )


def _split(value: Any) -> tuple[str, ...]:  # noqa: ANN401  # table values are loosely typed
    return tuple(v for v in str(value or "").split(",") if v)

"""Queues and tables (Azurite locally, Azure Storage in production) behind one small adapter."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from licensing.adapters.identity import storage_credential
from licensing.adapters.storage.counters import status_moved
from licensing.adapters.storage.failure_index import INDEX_TABLE
from licensing.adapters.storage.rows import STATUS_TABLE as STATUS_TABLE  # noqa: PLC0414  # re-exported
from licensing.adapters.storage.rows import (
    entity_or_none,
    event_entity,
    event_from_entity,
    same_write,
    status_entity,
    status_from_entity,
    table_key,
)
from licensing.adapters.storage.rows import transient as transient  # noqa: PLC0414  # re-exported (mypy --strict)
from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.core.records import AuditEvent, StatusRecord
from licensing.settings import StorageSettings

log = logging.getLogger(__name__)

EVENTS_TABLE = "LicenseEvents"
HR_EVENTS_TABLE = "HrEvents"  # eventId dedupe for the HR webhook
SCHEDULED_TABLE = "ScheduledRequests"  # requests due more than 7 days out (past the queue's delay limit)
RUNS_TABLE = "SweepRuns"  # partition "runs": one summary row per run; "lock" / "state": the lease and deltaLink
DRIFT_TABLE = "SweepDrift"  # partitions "<run id>-<hex digit>", one row per drifted user
LEASES_TABLE = "UserLeases"  # one short lease per user while a request for them is being applied
BUDGET_TABLE = "WriteBudget"  # Graph identity writes counted per slot of the window, shared by all workers
TABLES = (
    STATUS_TABLE,
    EVENTS_TABLE,
    HR_EVENTS_TABLE,
    SCHEDULED_TABLE,
    RUNS_TABLE,
    DRIFT_TABLE,
    LEASES_TABLE,
    BUDGET_TABLE,
    INDEX_TABLE,  # status counters, seats per day, the failure index (counters.py)
)
QUEUES = tuple(f"{queue}{tail}" for tail in ("", "-poison") for queue in (LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE))
MAX_VISIBILITY_DELAY = 7 * 24 * 3600 - 60  # the queue service refuses anything past 7 days

# Every lost ETag race means another writer's update went in, and a writer older than the row drops out, so
# N concurrent writers of one row need at most N rounds: this covers far more than a user ever sees at once.
STATUS_WRITE_ATTEMPTS = 32


class StoragePort(Protocol):
    """What the service layer needs from storage."""

    async def send(self, queue: str, payload: Mapping[str, Any], *, delay_seconds: int = 0) -> None: ...
    async def put_status(self, record: StatusRecord) -> None: ...
    async def append_event(self, event: AuditEvent) -> None: ...
    async def last_error(self, user_key: str, request_id: str) -> AuditEvent | None: ...


class Storage:
    """StoragePort over azure-storage-queue (base64 messages, as host.json expects) and azure-data-tables."""

    def __init__(
        self,
        queues: QueueServiceClient,
        tables: TableServiceClient,
        credential: Any = None,  # noqa: ANN401  # an azure-identity async credential
        blobs: BlobServiceClient | None = None,
    ) -> None:
        self._queues = queues
        self._tables = tables
        self._credential = credential
        self.blobs = blobs  # the sweep's CSV reports; None when no blob endpoint is configured
        self._queue_clients: dict[str, QueueClient] = {}

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> Storage:
        """Connection string (Azurite, keys) or identity-based service URIs (identity.storage_credential)."""
        if settings.connection_string:
            return cls(
                QueueServiceClient.from_connection_string(settings.connection_string),
                TableServiceClient.from_connection_string(settings.connection_string),
                blobs=BlobServiceClient.from_connection_string(settings.connection_string),
            )
        credential = storage_credential(settings)  # managed identity in Azure, an admin's az login elsewhere
        return cls(
            QueueServiceClient(settings.queue_service_uri or "", credential=credential),
            TableServiceClient(settings.table_service_uri or "", credential=credential),
            credential,
            BlobServiceClient(settings.blob_service_uri, credential=credential) if settings.blob_service_uri else None,
        )

    async def ensure_created(self) -> None:
        """Create our queues and tables if missing (idempotent; the deployment may have made them)."""
        for name in QUEUES:
            with transient(f"create queue {name}"), suppress(ResourceExistsError):
                await self.queue(name).create_queue()
        for table in TABLES:
            with transient(f"create table {table}"):
                await self._tables.create_table_if_not_exists(table)

    def table(self, name: str) -> TableClient:
        """A client for one of our tables."""
        return self._tables.get_table_client(name)

    def queue(self, name: str) -> QueueClient:
        """A client for one queue, base64 in both directions like the Functions host."""
        if name not in self._queue_clients:
            self._queue_clients[name] = self._queues.get_queue_client(
                name, message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
            )
        return self._queue_clients[name]

    async def send(self, queue: str, payload: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        """Enqueue a JSON message, invisible for ``delay_seconds`` (capped at the service's 7 days).

        Messages never expire (time_to_live=-1): the default 7-day TTL would silently drop a request
        delayed close to the 7-day limit, and nothing may vanish unrecorded.
        """
        delay = max(0, min(int(delay_seconds), MAX_VISIBILITY_DELAY))
        with transient(f"send to {queue}"):
            await self.queue(queue).send_message(
                json.dumps(payload, default=str), visibility_timeout=delay or None, time_to_live=-1
            )

    async def put_status(self, record: StatusRecord) -> None:
        """Write the latest status row for user+SKU, unless a newer outcome is already there.

        Optimistic concurrency: read, compare ``UpdatedAt``, then update under the row's ETag (or insert); a late
        writer with an older outcome never overwrites a newer one, and a lost race is re-read. Columns not written
        here (AssignedAt, VerifiedAt, LastError...) are merged, so they keep history. Once the write went in (also
        if its response was lost: the re-read finds rows.same_write), the counters move from the row it replaced.
        """
        entity = status_entity(record)
        table = self._tables.get_table_client(STATUS_TABLE)
        tried: StatusRecord | None = None  # the row the last write attempt meant to replace
        with transient(f"write status of {record.user_key}"):
            for attempt in range(STATUS_WRITE_ATTEMPTS):
                current = await entity_or_none(table, entity["PartitionKey"], entity["RowKey"])
                if attempt and current is not None and same_write(entity, current):
                    break  # an earlier attempt went in (its response was lost): it replaced ``tried``
                if current is not None and current.get("UpdatedAt") and current["UpdatedAt"] > record.updated_at:
                    log.info("kept the newer status of %s/%s", record.user_key, record.sku)
                    return
                tried = None if current is None else status_from_entity(current)
                try:
                    if current is None:
                        await table.create_entity(entity)
                    else:
                        condition = MatchConditions.IfNotModified
                        await table.update_entity(entity, etag=current.metadata["etag"], match_condition=condition)
                except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                    continue  # someone wrote or deleted it meanwhile, or our response was lost: compare
                break
            else:
                raise TransientError(f"status of {record.user_key}/{record.sku} kept changing under us")
            await status_moved(self, before=tried, after=record, sku=record.sku)

    async def delete_status(self, user_key: str, sku: str) -> None:
        """Remove one status row if it exists (under its ETag, so the outcome it held leaves the counters)."""
        table = self._tables.get_table_client(STATUS_TABLE)
        with transient(f"delete status of {user_key}"):
            for _ in range(STATUS_WRITE_ATTEMPTS):
                if (current := await entity_or_none(table, table_key(user_key), table_key(sku))) is None:
                    return
                try:
                    etag, condition = current.metadata["etag"], MatchConditions.IfNotModified
                    await table.delete_entity(current, etag=etag, match_condition=condition)
                except ResourceModifiedError:
                    continue
                except ResourceNotFoundError:
                    return  # a concurrent delete went first and moved the counters
                await status_moved(self, before=status_from_entity(current), after=None, sku=sku)
                return
            raise TransientError(f"status of {user_key}/{sku} kept changing under us")

    async def status(self, user_key: str, sku: str) -> StatusRecord | None:
        """One status row, or None."""
        table = self._tables.get_table_client(STATUS_TABLE)
        with transient(f"read status of {user_key}"):
            entity = await entity_or_none(table, table_key(user_key), table_key(sku))
        return None if entity is None else status_from_entity(entity)

    async def statuses(
        self, user_key: str | None = None, *, outcome: str | None = None, select: Sequence[str] | None = None
    ) -> AsyncIterator[StatusRecord]:
        """Status rows, optionally for one user and/or one outcome; ``select`` reads only those columns (the
        others come back empty), which makes a scan of the whole table about 3x cheaper."""
        clauses, params = [], {}
        if user_key is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = table_key(user_key)
        if outcome is not None:
            clauses.append("Outcome eq @outcome")
            params["outcome"] = outcome
        client = self._tables.get_table_client(STATUS_TABLE)
        columns = list(select) if select else None
        pages = (
            client.query_entities(" and ".join(clauses), parameters=params, select=columns)
            if clauses
            else client.list_entities(select=columns)
        )
        async for e in pages:
            yield status_from_entity(e)

    async def append_event(self, event: AuditEvent) -> None:
        """Append to the audit trail; RowKeys sort newest first within a user."""
        entity = event_entity(event)
        with transient(f"append event for {event.user_key}"):
            await self._tables.get_table_client(EVENTS_TABLE).create_entity(entity)

    async def events(self, user_key: str) -> list[AuditEvent]:
        """A user's audit trail, newest first."""
        client = self._tables.get_table_client(EVENTS_TABLE)
        rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": table_key(user_key)})
        return [event_from_entity(user_key, e) async for e in rows]

    async def recent_events(self, user_key: str, kind: str, *, since: datetime) -> list[AuditEvent]:
        """A user's audit events of one kind at or after ``since``, newest first."""
        client = self._tables.get_table_client(EVENTS_TABLE)
        params = {"pk": table_key(user_key), "kind": kind, "since": since}
        rows = client.query_entities("PartitionKey eq @pk and Kind eq @kind and At ge @since", parameters=params)
        return [event_from_entity(user_key, e) async for e in rows]

    async def last_error(self, user_key: str, request_id: str) -> AuditEvent | None:
        """The newest AttemptFailed event of a request (what the poison handler reports)."""
        client = self._tables.get_table_client(EVENTS_TABLE)
        rows = client.query_entities(
            "PartitionKey eq @pk and RequestId eq @rid and Kind eq 'AttemptFailed'",
            parameters={"pk": table_key(user_key), "rid": request_id},
        )
        async for e in rows:
            return event_from_entity(user_key, e)
        return None

    async def close(self) -> None:
        """Close every client (their aiohttp sessions belong to the current event loop)."""
        for client in self._queue_clients.values():
            await client.close()
        await self._queues.close()
        await self._tables.close()
        if self.blobs is not None:
            await self.blobs.close()
        if self._credential is not None:
            await self._credential.close()

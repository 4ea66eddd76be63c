"""The sweep's reads besides the user pages: the changed users behind a delta read, the deltaLink for the next run,
and Intune managed devices per user."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from licensing.adapters.graph.bulk import BATCH_LIMIT, SWEEP_SELECT, BulkReader, DeltaExpired, user_path
from licensing.adapters.graph.client import ForeignLink
from licensing.adapters.graph.reads import user_from_json
from licensing.core.drift import DeviceTally
from licensing.core.errors import AccessDenied, LicensingError
from licensing.core.model import UserFacts

Consume = Callable[[Sequence[UserFacts]], Awaitable[None]]
Note = Callable[[str], None]


@dataclass
class DeltaRead:
    """What following the stored deltaLink gave."""

    next_link: str | None  # to store: Graph's new link, or the stored one again when a changed user was not read
    settled: set[str] = field(default_factory=set)  # read and assessed, or gone (404): a fallback full read skips them
    fallback: str = ""  # why the link could not be followed ("": it was): this run reads every user instead


async def follow_delta(reader: BulkReader, link: str, consume: Consume, *, note: Note) -> DeltaRead:
    """The users changed since ``link``, read 20 per $batch and handed to ``consume``.

    A changed user whose read came back neither 200 nor 404 (throttled past every wait, 5xx) is not lost: the stored
    link is kept, so the next run reads these changes again - users read this time are then assessed once more,
    which only repeats a finding (a fix for it is idempotent). Keeping the link rather than a list of unread ids
    needs no new state, and the link stays valid for the token's lifetime (about 7 days): should it expire, or
    SWEEP_FULL_EVERY_DAYS come first, a full read covers everyone anyway.
    """
    found = DeltaRead(link)
    unread: Counter[int] = Counter()
    try:
        async for page in reader.delta(link):
            ids = [u["id"] for u in page if "@removed" not in u and u.get("id")]
            users, settled, failed = await read_users(reader, ids, note=note)
            found.settled |= settled
            unread += failed
            await consume(users)
    except DeltaExpired as exc:  # Graph forgot the link (tokens last about 7 days)
        found.fallback = exc.message.removeprefix("the users deltaLink has ")
        return found
    except ForeignLink as exc:  # a planted SweepRuns row gets no token and does not stop the nightly sweep
        found.fallback = "delta link refused: not below LICENSING_GRAPH_URL"
        note(f"{exc.message}; every user was read instead")
        return found
    if unread:
        note(
            f"{unread.total()} changed user(s) not read ({statuses(unread)}): the deltaLink was kept, so the next run "
            "reads these changes again"
        )
    else:
        found.next_link = reader.delta_link or link
    return found


async def read_users(
    reader: BulkReader, ids: Sequence[str], *, note: Note
) -> tuple[list[UserFacts], set[str], Counter[int]]:
    """Changed users' full state, 20 per $batch (delta does not carry licenseAssignmentStates): the users read, the
    ids settled (read, or 404: deleted since they changed), and how many answers came back with any other status."""
    select = ",".join(SWEEP_SELECT)
    paths = {user: path for user in ids if (path := user_path(user))}
    if len(paths) < len(ids):
        note(f"{len(ids) - len(paths)} user id(s) in a delta page are not object ids: not read")
    keys = list(paths)
    chunks = [keys[i : i + BATCH_LIMIT] for i in range(0, len(keys), BATCH_LIMIT)]
    answers = await asyncio.gather(*(reader.batch([f"{paths[u]}?$select={select}" for u in c]) for c in chunks))
    users: list[UserFacts] = []
    settled: set[str] = set()
    failed: Counter[int] = Counter()
    for chunk, answer in zip(chunks, answers, strict=True):
        for user_id, (status, body) in zip(chunk, answer, strict=True):
            if status == 200 and isinstance(body, dict):
                users.append(user_from_json(body))
            elif status != 404:
                failed[status] += 1
                continue
            settled.add(user_id)
    return users, settled, failed


def statuses(counts: Counter[int]) -> str:
    """``429 x3, 503 x1``: the HTTP statuses of answers that were not used."""
    return ", ".join(f"{status} x{count}" for status, count in sorted(counts.items()))


async def start_delta(reader: BulkReader, *, note: Note) -> str | None:
    """A deltaLink for the next run; a full read does not depend on it (None: the next run reads fully again)."""
    try:
        return await reader.latest_delta_link()
    except LicensingError as exc:
        note(f"no delta link for the next run ({exc.message}): it reads every user again")
        return None


async def count_devices(reader: BulkReader, *, enabled: bool, note: Note) -> DeviceTally | None:
    """Managed devices per user when LICENSING_DEVICE_LIMIT_CHECK is on (full reads only: devices change without
    the user changing, so a delta read could not say who crossed the limit)."""
    if not enabled:
        return None
    tally = DeviceTally()
    try:
        await reader.devices_per_user(tally)
    except AccessDenied:
        note("device-limit check skipped: Graph refused managedDevices (grant DeviceManagementManagedDevices.Read.All)")
        return None
    except LicensingError as exc:
        note(f"device-limit check skipped: {exc.message}")
        return None
    return tally

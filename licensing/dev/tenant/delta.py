"""GET /users/delta: Graph's change tracking for users, read from the tenant's change log.

A round starts without a token (every current user, in pages) or with ``$deltatoken=latest`` (no users,
just a deltaLink for "now"). Each page but the last carries ``@odata.nextLink`` (``$skiptoken``), the
last ``@odata.deltaLink`` (``$deltatoken``). Following a deltaLink gives the users changed since it was
issued - each once, in its current state with the tracked properties - and deleted users as
``{"id": ..., "@removed": {"reason": "changed"}}`` (``"deleted"`` once gone for good), paged the same way.
The deltaLink of a round encodes the sequence number at which the round *started*, so a change made
while a client pages is reported again next round rather than lost (Graph warns of such replays).

Checked against Graph's docs (user: delta, delta query overview, delta query for users) and public
captures: absolute links ``.../users/delta?$skiptoken=`` / ``?$deltatoken=`` with ``$select`` encoded
in the token rather than repeated; ``$deltatoken=latest`` for directory resources; the ``@removed``
reasons; ``id`` always returned; ``$top`` not honoured for users (pages of 200: ``delta_page_size``);
tokens of directory objects expire after seven days. An expired token (or one outstanding when
``expire_delta_tokens`` ran) is answered as https://learn.microsoft.com/graph/delta-query-overview
describes, per ``strictness.delta_expired``: "410" is 410 Gone, error ``resyncRequired``, with a
``Location`` header holding a link that starts a full round afresh (same $select); "syncStateNotFound"
is 400 ``syncStateNotFound`` and "The sync state generation is not found. The delta token is expired and
data must be synchronized again.". A token that cannot be read at all always gets the 400.

Where the emulator differs from Graph, on purpose:

* a user changed in any way (any property, assignLicense, accountEnabled) is reported, whatever is
  selected; Graph reports only changes to tracked properties and does not track licenseAssignmentStates;
* a reported user carries every selected property (None as null), as Graph's default response does,
  except that Graph leaves out properties never set; ``Prefer: return=minimal`` is ignored;
* ``$filter`` (Graph: only ``id eq``), ``$orderby``, ``$expand``, ``$search`` and ``$count`` are refused
  outright - the wording is our guess - and a malformed token gets the expired-token error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from licensing.dev.tenant.model import GraphError, User
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, ok
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.views import parse_select, render_user, users_context

_REFUSED_OPTIONS = ("$filter", "$orderby", "$expand", "$search", "$count")
_FULL, _CHANGES = "full", "changes"


def sync_state_not_found() -> GraphError:
    """Graph's answer to an expired (or, here, unreadable) delta or skip token."""
    return GraphError(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a delta round stands; what a $skiptoken (and, with cursor unused, a $deltatoken) carries.

    ``upto`` is the sequence at which the round started (the next deltaLink's starting point).
    A full enumeration's ``cursor`` is a position in the listing order; a change round's is the
    sequence of the last change served (the first page starts after the deltaLink's sequence).
    """

    kind: str
    upto: int
    cursor: int
    select: tuple[str, ...] | None


def encode(state: TenantState, cursor: Cursor) -> str:
    """An opaque, URL-safe token for a cursor, stamped with the tenant's epoch and the time issued."""
    payload = {
        "e": state.delta_epoch,
        "k": cursor.kind,
        "u": cursor.upto,
        "c": cursor.cursor,
        "s": ",".join(cursor.select) if cursor.select is not None else None,
        "t": round(state.clock(), 3),
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def resync_required(state: TenantState, base_url: str, select: tuple[str, ...] | None) -> GraphError:
    """410 Gone with a Location to start over, or the older 400 syncStateNotFound (strictness.delta_expired)."""
    if state.strictness.delta_expired != "410":
        return sync_state_not_found()
    fresh = Cursor(_FULL, state.sequence, 0, select)
    location = f"{base_url}/users/delta?$skiptoken={encode(state, fresh)}"
    message = "The delta token is no longer valid: resynchronize from the link in the Location header."
    return GraphError(410, "resyncRequired", message, headers={"Location": location})


def decode(state: TenantState, token: str, base_url: str = "") -> Cursor:
    """The cursor a token stands for, or an error: syncStateNotFound (unreadable), or for an expired token
    (another epoch or past its lifetime) what ``resync_required`` answers."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        kind, upto, cursor, issued = payload["k"], int(payload["u"]), int(payload["c"]), float(payload["t"])
        select = parse_select(payload["s"]) if payload["s"] is not None else None
        epoch = payload["e"]
    except (ValueError, TypeError, KeyError, binascii.Error, GraphError):
        raise sync_state_not_found() from None
    selected = tuple(select) if select is not None else None
    if kind not in {_FULL, _CHANGES}:
        raise sync_state_not_found()
    if epoch != state.delta_epoch or state.clock() - issued > state.delta_token_lifetime:
        raise resync_required(state, base_url, selected)
    if not 0 <= upto <= state.sequence:
        raise sync_state_not_found()
    return Cursor(kind, upto, cursor, selected)


def users_delta(ctx: Context, req: GraphRequest, _: Mapping[str, str]) -> GraphResponse:
    """GET /users/delta (also ``delta()`` and ``microsoft.graph.delta()``, as the SDK spells it)."""
    state = ctx.state
    query = {k.lower(): v for k, v in req.query.items()}
    refused = next((o for o in _REFUSED_OPTIONS if o in query), None)
    if refused is not None:
        raise GraphError(
            400, "Request_UnsupportedQuery", f"The query option '{refused}' is not supported with change tracking."
        )
    select = tuple(parse_select(query["$select"]) or ()) if "$select" in query else None
    delta_token, skip_token = query.get("$deltatoken"), query.get("$skiptoken")
    if delta_token is not None and delta_token.lower() == "latest":
        return _page(req, state, [], None, Cursor(_CHANGES, state.sequence, state.sequence, select))
    if skip_token is not None:
        cursor = decode(state, skip_token, req.base_url)
    elif delta_token is not None:
        since = decode(state, delta_token, req.base_url)
        cursor = Cursor(_CHANGES, state.sequence, since.upto, since.select)
    else:
        cursor = Cursor(_FULL, state.sequence, 0, select)
    if select is not None:  # Graph lets a client change what it tracks on a later request
        cursor = Cursor(cursor.kind, cursor.upto, cursor.cursor, select)
    if cursor.kind == _FULL:
        users, next_position = state.page_of_users(cursor.cursor, state.delta_page_size)
        items = [_render(state, u, cursor.select) for u in users]
        following = None if next_position is None else Cursor(_FULL, cursor.upto, next_position, cursor.select)
        return _page(req, state, items, following, cursor)
    changed = state.changed_after(cursor.cursor, cursor.upto)
    served = changed[: state.delta_page_size]
    items = [_changed_item(state, user_id, cursor.select) for _, user_id in served]
    following = None
    if len(changed) > len(served):
        following = Cursor(_CHANGES, cursor.upto, served[-1][0], cursor.select)
    return _page(req, state, items, following, cursor)


def _page(
    req: GraphRequest, state: TenantState, items: list[dict[str, Any]], following: Cursor | None, current: Cursor
) -> GraphResponse:
    """One page: a nextLink while the round goes on, else a deltaLink starting where the round started."""
    body: dict[str, Any] = {"@odata.context": users_context(req.base_url, current.select, entity=False)}
    if following is not None:
        body["@odata.nextLink"] = f"{req.base_url}/users/delta?$skiptoken={encode(state, following)}"
    else:
        done = Cursor(_CHANGES, current.upto, current.upto, current.select)
        body["@odata.deltaLink"] = f"{req.base_url}/users/delta?$deltatoken={encode(state, done)}"
    body["value"] = items
    return ok(body)


def _render(state: TenantState, user: User, select: Sequence[str] | None) -> dict[str, Any]:
    item = render_user(state, user, select)
    item.setdefault("id", user.id)  # Graph always returns id on delta
    return item


def _changed_item(state: TenantState, user_id: str, select: Sequence[str] | None) -> dict[str, Any]:
    user = state.users.get(user_id)
    if user is not None:
        return _render(state, user, select)
    reason = "changed" if user_id in state.deleted_users else "deleted"  # restorable, or gone for good
    return {"id": user_id, "@removed": {"reason": reason}}

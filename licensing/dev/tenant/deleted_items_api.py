"""GET /directory/deletedItems/{id} of Graph v1.0, routed, counted and faulted by graph_api.dispatch.

https://learn.microsoft.com/graph/api/directory-deleteditems-get: a soft-deleted user stays in deleted items for
30 days and is answered as a directoryObject whose ``@odata.type`` is ``#microsoft.graph.user`` ($select honoured;
application permission User.Read.All). An id not in deleted items - a live user, one never created or one deleted
for good - is 404 Request_ResourceNotFound.
"""

from __future__ import annotations

from collections.abc import Mapping

from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, ok
from licensing.dev.tenant.views import parse_select, render_user

USER_TYPE = "#microsoft.graph.user"


def get_deleted_item(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """GET /directory/deletedItems/{id}: the soft-deleted user (Graph's default properties without $select)."""
    select = parse_select(req.query.get("$select"))
    user = ctx.state.deleted_user(params["id"])
    head = {"@odata.context": f"{req.base_url}/$metadata#directoryObjects/$entity", "@odata.type": USER_TYPE}
    return ok(head | render_user(ctx.state, user, select))

"""Graph notification parsing: clientState, tenant and subscription checks, replay keys, the validation token."""

from typing import Any

import pytest

from licensing.core.notifications import MAX_ITEMS, Scope, batch_items, read_changes, replay_key
from licensing.services.notifications import MAX_VALIDATION_TOKEN, RecentlyQueued, validation_reply

TENANT = "6a3f1c2e-8b4d-4e7a-9c15-2f0d8e6b7a91"
OURS = Scope("s3cret")


def item(user: str, *, state: str = "s3cret", change: str = "updated", **extra: Any) -> dict[str, Any]:
    """One users change notification as Graph sends it."""
    resource_data = {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user}", "id": user}
    return {
        "subscriptionId": "sub-1",
        "changeType": change,
        "clientState": state,
        "resource": f"Users/{user}",
        "resourceData": resource_data,
        "tenantId": TENANT,
        **extra,
    }


def summary(items: list[Any], scope: Scope = OURS) -> tuple[list[str], int, int, int]:
    """(users, wrong clientState, foreign, ignored) of a batch."""
    changes = read_changes(items, scope)
    return list(changes.users), changes.mismatched, changes.foreign, changes.ignored


def test_updated_users_are_collected_once_each() -> None:
    """Several notifications for one user make one request."""
    assert summary([item("u1"), item("u2"), item("u1")]) == (["u1", "u2"], 0, 0, 0)


def test_wrong_or_missing_client_state_is_counted_and_dropped() -> None:
    """A forged or stale clientState never leads to a request."""
    assert summary([item("u1", state="nope"), {**item("u2"), "clientState": None}, item("u3")]) == (["u3"], 2, 0, 0)


def test_without_a_configured_client_state_nothing_is_trusted() -> None:
    """No GRAPH_NOTIFICATION_CLIENT_STATE: every item counts as a mismatch."""
    assert summary([item("u1")], Scope(None)) == ([], 1, 0, 0)


def test_deleted_users_are_ignored() -> None:
    """A deleted user's licenses go with it; nothing to enqueue."""
    assert summary([item("u1", change="deleted")]) == ([], 0, 0, 1)


def test_not_a_notification_is_an_error() -> None:
    """Anything without a value list is refused."""
    with pytest.raises(TypeError):
        batch_items({"foo": 1})


def test_a_batch_over_the_item_limit_is_refused_before_reading_it() -> None:
    """More items than Graph's batches hold is an OverflowError (the endpoint answers 413)."""
    assert len(batch_items({"value": [{}] * MAX_ITEMS})) == MAX_ITEMS
    with pytest.raises(OverflowError, match="the limit is 1,000"):
        batch_items({"value": [{}] * (MAX_ITEMS + 1)})


def test_items_from_another_tenant_are_foreign() -> None:
    """With LICENSING_TENANT_ID set, another tenant's item (or one naming none) is dropped and counted."""
    scope = Scope("s3cret", tenant_id=TENANT)
    other = item("u2", tenantId="0badc0de-0000-4000-8000-000000000000")
    untenanted = {k: v for k, v in item("u3").items() if k != "tenantId"}
    assert summary([item("u1"), other, untenanted], scope) == (["u1"], 0, 2, 0)
    assert summary([item("u4", tenantId=TENANT.upper())], scope) == (["u4"], 0, 0, 0)


def test_lifecycle_items_name_the_tenant_organization_id_too() -> None:
    """Graph sends some lifecycle notifications with organizationId instead of tenantId: both are read."""
    lifecycle = {"subscriptionId": "sub-1", "clientState": "s3cret", "organizationId": TENANT}
    assert Scope("s3cret", tenant_id=TENANT).refuses(lifecycle) is None


def test_items_for_a_subscription_that_is_not_ours_are_foreign() -> None:
    """Once the app has recorded its subscriptions, any other subscriptionId (or a non-string one) is dropped."""
    scope = Scope("s3cret", subscriptions=frozenset({"sub-1"}))
    batch = [item("u1"), item("u2", subscriptionId="sub-9"), item("u3", subscriptionId=["sub-1"])]
    assert summary(batch, scope) == (["u1"], 0, 2, 0)


def test_unhashable_or_odd_fields_are_ignored_not_a_crash() -> None:
    """A list where a string belongs, or a user id longer than any Entra id, is ignored."""
    batch = [item("u1", changeType=["updated"]), item("x" * 300), {**item("u2"), "resourceData": [], "resource": 7}]
    assert summary(batch) == ([], 0, 0, 3)


def test_replay_keys_follow_graphs_own_id_else_the_whole_item() -> None:
    """Graph's notification id decides when present; without it, any difference in content is a new key."""
    assert replay_key(item("u1", id="n1")) == replay_key(item("u1", id="n1", subscriptionExpirationDateTime="x"))
    assert replay_key(item("u1", id="n1")) != replay_key(item("u1", id="n2"))
    assert replay_key(item("u1")) == replay_key(item("u1"))
    assert replay_key(item("u1")) != replay_key(item("u1", sequenceNumber=2))


def test_recently_queued_keys_expire_and_the_oldest_are_forgotten_first() -> None:
    """A key is a duplicate inside its window only."""
    recent = RecentlyQueued()
    recent.add(["k"], now=0.0)
    assert recent.seen("k", now=1.0)
    assert not recent.seen("k", now=10_000.0)
    assert not recent.seen("other", now=1.0)


def test_validation_token_is_echoed_as_text_that_is_never_sniffed() -> None:
    """The subscription handshake answers 200 text/plain with the token and X-Content-Type-Options: nosniff."""
    reply = validation_reply({"validationToken": "abc 123"})
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, "abc 123", "text/plain")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert validation_reply({}) is None


@pytest.mark.parametrize(
    "token", ["x" * (MAX_VALIDATION_TOKEN + 1), "line\r\nSet-Cookie: a=b", "nul\x00", "del\x7f", "c1\x85"]
)
def test_an_overlong_or_control_character_token_is_refused(token: str) -> None:
    """A token Graph would never send is a 400, not echoed."""
    reply = validation_reply({"validationToken": token})
    assert reply is not None
    assert reply.status == 400
    assert token not in str(reply.body)


def test_non_ascii_client_state_is_a_mismatch_not_a_crash() -> None:
    """A forged clientState with non-ASCII text is just wrong (compare_digest would raise on str)."""
    assert summary([item("u1", state="s3crét")]) == ([], 1, 0, 0)

"""Graph notification parsing: clientState check and which users to re-evaluate."""

import pytest

from licensing.services.notifications import user_changes, validation_reply


def item(user: str, *, state: str = "s3cret", change: str = "updated") -> dict[str, object]:
    return {
        "subscriptionId": "sub-1", "changeType": change, "clientState": state, "resource": f"Users/{user}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user}", "id": user},
        "tenantId": "t",
    }  # fmt: skip


def test_updated_users_are_collected_once_each() -> None:
    """Several notifications for one user make one request."""
    users, mismatched, ignored = user_changes({"value": [item("u1"), item("u2"), item("u1")]}, "s3cret")
    assert (users, mismatched, ignored) == (["u1", "u2"], 0, 0)


def test_wrong_or_missing_client_state_is_counted_and_dropped() -> None:
    """A forged or stale clientState never leads to a request."""
    payload = {"value": [item("u1", state="nope"), {**item("u2"), "clientState": None}, item("u3")]}
    assert user_changes(payload, "s3cret") == (["u3"], 2, 0)


def test_without_a_configured_client_state_nothing_is_trusted() -> None:
    """No GRAPH_NOTIFICATION_CLIENT_STATE: every item counts as a mismatch."""
    assert user_changes({"value": [item("u1")]}, None) == ([], 1, 0)


def test_deleted_users_are_ignored() -> None:
    """A deleted user's licenses go with it; nothing to enqueue."""
    assert user_changes({"value": [item("u1", change="deleted")]}, "s3cret") == ([], 0, 1)


def test_not_a_notification_is_an_error() -> None:
    """Anything without a value list is refused."""
    with pytest.raises(TypeError):
        user_changes({"foo": 1}, "s3cret")


def test_validation_token_is_echoed() -> None:
    """The subscription handshake answers 200 text/plain with the token."""
    reply = validation_reply({"validationToken": "abc 123"})
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, "abc 123", "text/plain")
    assert validation_reply({}) is None


def test_non_ascii_client_state_is_a_mismatch_not_a_crash() -> None:
    """A forged clientState with non-ASCII text is just wrong (compare_digest would raise on str)."""
    assert user_changes({"value": [item("u1", state="s3crét")]}, "s3cret") == ([], 1, 0)

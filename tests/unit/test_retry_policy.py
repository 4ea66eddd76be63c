"""One retry owner per kind of Graph call: the queue for identity writes, the SDK (bounded) for reads."""

import json
from pathlib import Path

import httpx
from kiota_http.middleware.options import RetryHandlerOption

from licensing.adapters.graph.client import MAX_RETRIES, RETRY_WINDOW, GraphRetryHandler, identity_write
from licensing.adapters.storage.leases import LEASE
from licensing.settings import GRAPH_RETRY_WAIT_CAP, LIMITS

ROOT = Path(__file__).resolve().parents[2]


def test_identity_writes_are_recognised_in_every_addressing_form() -> None:
    """assignLicense and PATCH of a user (by id, UPN or the ('$upn') form) are writes; $batch and reads are not."""
    assert identity_write("POST", "/v1.0/users/0f1e/assignLicense")
    assert identity_write("post", "/v1.0/users('$adm@contoso.com')/assignLicense")
    assert identity_write("PATCH", "/v1.0/users/ada@contoso.com")
    assert identity_write("PATCH", "/v1.0/users('$adm@contoso.com')")
    assert not identity_write("POST", "/v1.0/$batch")
    assert not identity_write("GET", "/v1.0/users/0f1e")
    assert not identity_write("PATCH", "/v1.0/subscriptions/5a")


def test_a_retry_after_beyond_the_cap_is_not_waited_out() -> None:
    """Retry-After 5 s is honoured; 11 s becomes the SDK's give-up value, so the call fails as transient."""
    handler = GraphRetryHandler(RetryHandlerOption(delay=0, max_retries=MAX_RETRIES))
    within = httpx.Response(429, headers={"Retry-After": "5"})
    beyond = httpx.Response(429, headers={"Retry-After": str(int(GRAPH_RETRY_WAIT_CAP) + 1)})
    assert handler.get_delay_time(0, within, 0) == 5
    assert handler.get_delay_time(0, beyond, 0) >= RetryHandlerOption.MAX_DELAY
    assert handler.get_delay_time(MAX_RETRIES - 1, None, LIMITS["LICENSING_GRAPH_RETRY_DELAY_SECONDS"]) <= (
        GRAPH_RETRY_WAIT_CAP
    )


def test_worst_case_of_one_call_stays_below_the_lease_and_the_function_timeout() -> None:
    """Read: retry window + one capped wait + a last attempt; write: one attempt. Both < 120 s lease < 300 s."""
    host = json.loads((ROOT / "host.json").read_text())
    hours, minutes, seconds = (int(x) for x in host["functionTimeout"].split(":"))
    function_timeout = hours * 3600 + minutes * 60 + seconds
    attempt = LIMITS["LICENSING_GRAPH_TIMEOUT_SECONDS"]
    read = RETRY_WINDOW + GRAPH_RETRY_WAIT_CAP + attempt
    write = attempt
    assert read == 100
    assert read < LEASE.total_seconds() <= function_timeout
    assert write < LEASE.total_seconds()
    assert MAX_RETRIES * GRAPH_RETRY_WAIT_CAP <= RETRY_WINDOW  # all three capped waits fit in the window

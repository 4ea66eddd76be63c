"""The queue names producers write to and the triggers listen on (kept apart from the pydantic message models,
so that indexing the functions loads no pydantic)."""

LICENSE_REQUESTS_QUEUE = "license-requests"
LICENSE_VERIFY_QUEUE = "license-verify"

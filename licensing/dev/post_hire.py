"""Sign and POST one HR hire to the app, as the HR system would: a dev helper for the `make run` tour.

python -m licensing.dev.post_hire USER_PRINCIPAL_NAME [--department D] [--country CC] [--employee-type T]
                                  [--start-date YYYY-MM-DD] [--event-id ID] [--url API_URL] [--standard]

Reads HR_WEBHOOK_SECRET and LICENSING_API_URL (default http://127.0.0.1:7071/api) from the environment, the
`export` lines `make run` prints. ``--standard`` signs as a Standard Webhooks sender (webhook-id,
webhook-timestamp, webhook-signature) instead of X-Signature. Prints the HTTP status and the app's answer; exit 0
on 2xx, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from licensing.core.signing import sign
from licensing.core.standard_webhooks import SecretUnusable, sign_standard, signing_key

DEFAULT_API_URL = "http://127.0.0.1:7071/api"


def hire_event(upn: str, args: argparse.Namespace) -> dict[str, Any]:
    """The hire as the published schema (docs/hr-events.schema.json) has it; unset fields left out."""
    event: dict[str, Any] = {
        "eventId": args.event_id or f"dev-{uuid.uuid4().hex[:12]}",
        "type": "hire",
        "employeeId": args.employee_id or f"E-{upn.split('@', 1)[0]}"[:256],
        "userPrincipalName": upn,
    }
    optional = {
        "department": args.department,
        "country": args.country,
        "employeeType": args.employee_type,
        "startDate": args.start_date,
    }
    return event | {k: v for k, v in optional.items() if v}


def signed_headers(secret: str, body: bytes, *, now: float) -> dict[str, str]:
    """X-Timestamp and X-Signature: sha256=hex(HMAC(secret, timestamp + "." + body))."""
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        "X-Timestamp": timestamp,
        "X-Signature": "sha256=" + sign(secret, timestamp, body),
    }


def standard_headers(secret: str, body: bytes, *, now: float, webhook_id: str) -> dict[str, str]:
    """webhook-id, webhook-timestamp, webhook-signature: v1,base64(HMAC(key, id.timestamp.body)) (standardwebhooks.com).

    Raises SecretUnusable when a whsec_ secret is not base64.
    """
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign_standard(signing_key(secret), webhook_id, timestamp, body),
    }


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = 30.0) -> tuple[int, str]:
    """POST and return (status, text); an HTTP error status is an answer, not an exception."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ValueError(f"{url!r} is not an http(s) URL")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310  # checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # scheme checked above
            return int(response.status), response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", errors="replace")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m licensing.dev.post_hire", description=__doc__.splitlines()[0])
    parser.add_argument("user", metavar="USER_PRINCIPAL_NAME", help="a user in the tenant, e.g. liam.obrien@...")
    parser.add_argument("--department", help="e.g. Sales (the policy matches on it)")
    parser.add_argument("--country", help="ISO 3166-1 alpha-2; becomes the usage location")
    parser.add_argument("--employee-type", help="e.g. Employee or Contractor")
    parser.add_argument("--start-date", help="YYYY-MM-DD; licensed from that day (default: now)")
    parser.add_argument("--event-id", help="default: a new random id (a repeated id is answered as a duplicate)")
    parser.add_argument("--employee-id", help="default: E-<the UPN's local part>")
    parser.add_argument("--standard", action="store_true", help="sign with Standard Webhooks, not X-Signature")
    parser.add_argument("--url", help="the app's /api base URL (default $LICENSING_API_URL or %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when the app answered 2xx."""
    args = parse_args(argv)
    secret = os.environ.get("HR_WEBHOOK_SECRET")
    if not secret:
        print("HR_WEBHOOK_SECRET is not set: paste the export lines `make run` printed", file=sys.stderr)
        return 2
    api = (args.url or os.environ.get("LICENSING_API_URL") or DEFAULT_API_URL).rstrip("/")
    body = json.dumps(hire_event(args.user, args)).encode()
    try:
        if args.standard:
            headers = standard_headers(secret, body, now=time.time(), webhook_id=f"msg_{uuid.uuid4().hex}")
        else:
            headers = signed_headers(secret, body, now=time.time())
    except SecretUnusable as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        status, answer = post(f"{api}/hr/events", body, headers)
    except (OSError, ValueError) as exc:
        print(f"could not reach {api}/hr/events: {exc}", file=sys.stderr)
        return 1
    print(f"{status} {answer}")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())

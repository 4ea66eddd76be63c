"""Our error hierarchy: permanent problems are recorded and completed, transient ones are retried."""

from __future__ import annotations


class LicensingError(Exception):
    """Base of every error this app raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentError(LicensingError):
    """Retrying will not help until someone changes data or configuration."""


class TransientError(LicensingError):
    """Throttled, unavailable or timed out: the queue should redeliver the message."""


class InvalidRequest(PermanentError):
    """The queue message or command is malformed."""


class PolicyError(PermanentError):
    """The policy file is invalid or names something the tenant does not have."""


class UserNotFound(PermanentError):
    """Graph does not know the user (or has not replicated it yet)."""


class UsageLocationMissing(PermanentError):
    """No usage location on the user, the request or the policy: Graph refuses the assignment."""


class SeatsExhausted(PermanentError):
    """A SKU has no free seats; the request is blocked until seats free up."""

    def __init__(self, message: str, *, part_numbers: tuple[str, ...]) -> None:
        super().__init__(message)
        self.part_numbers = part_numbers


class AssignmentRejected(PermanentError):
    """Graph refused the assignment for a reason retrying will not fix (plan conflicts, unknown SKU...)."""


class AccessDenied(PermanentError):
    """The app's identity lacks a Graph permission for this call."""

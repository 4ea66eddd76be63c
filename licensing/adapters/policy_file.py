"""The policy file on disk (LICENSING_POLICY_PATH): read here, parsed and validated by the pure core."""

from __future__ import annotations

from pathlib import Path

from licensing.core.errors import PolicyError
from licensing.core.policy import Policy, policy_from_text


def load_policy(path: Path) -> Policy:
    """Load a JSON or TOML policy file (by extension) and validate it (PolicyError naming the fix)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            f"cannot read policy file {path}: {exc.strerror}; set LICENSING_POLICY_PATH to an existing file"
        ) from None
    return policy_from_text(text, filename=str(path))

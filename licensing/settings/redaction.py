"""repr/str of settings that never show a secret (settings end up in logs, tracebacks and debuggers)."""

from __future__ import annotations

import re
from dataclasses import fields

REDACTED = "<redacted>"
# Secret parts of connection strings (storage keys and SAS, App Insights keys) and of URLs (?code= function keys,
# SAS tokens in service URIs): the part is kept, so a log still shows which account or endpoint was meant.
_SECRET_PAIR = re.compile(r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|InstrumentationKey|sig)=[^;&\s]*")
_QUERY = re.compile(r"\?[^\s;]*")


def redact(text: str) -> str:
    """Text with the secret parts of connection strings and every URL query string replaced."""
    return _QUERY.sub("?" + REDACTED, _SECRET_PAIR.sub(lambda m: f"{m.group(1)}={REDACTED}", text))


class Redacted:
    """repr/str that never show a secret: fields marked secret show as redacted, other text has its keys masked.

    Settings end up in logs and tracebacks (repr of Services, a failed assertion, a debugger): the storage key and
    the notification URLs' function keys must not go with them.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):  # type: ignore[arg-type]  # every subclass is a dataclass
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                text = repr(REDACTED)
            else:
                text = repr(redact(value) if isinstance(value, str) else value)
            shown.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__


SECRET = {"secret": True}

"""Redaction of secrets in text that came from a server (error messages, bodies) before it is stored or logged.

Airflow's secrets masker only hides what is registered in the *current* process, and only in log output: an
XCom value, a file the run writes, or a trigger event built from a server's error text keeps whatever the
server echoed back (a proxy that repeats the ``Authorization`` header, a token endpoint that quotes the form).
:class:`Redactor` knows every secret of one hook (the private-app token, the client secret, the refresh token
and every access token issued) and also removes anything after ``Bearer``, whatever the secret. Every piece
of server text the provider keeps goes through :meth:`Redactor.redact` once, where it is parsed.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final

__all__ = ["MASK", "Redactor", "redact_bearer"]

MASK: Final = "***"
#: ``Bearer <anything>``, ``access_token=...``, ``refresh_token=...``, ``client_secret=...`` (form or JSON).
_PATTERNS: Final = re.compile(
    r"(?i)(bearer\s+)[^\s\"',;}]+"
    r"|((?:access_token|refresh_token|client_secret|token)[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"
)
#: Cheap pre-check on raw answer bytes: only answers holding a known secret or "bearer" (any case) are parsed for
#: redaction. ``bytes.lower()`` + a substring search is ~6x faster than a case-insensitive regex on a 40 KB answer.
_BEARER_LOWER: Final = b"bearer"
#: Secrets shorter than this are not redacted by value (a 3-character "secret" would shred every message).
_MIN_SECRET: Final = 6


def redact_bearer(text: str) -> str:
    """Replace bearer tokens and ``*_token=``/``client_secret=`` values in ``text`` by ``***``.

    :param text: any text.
    """
    return _PATTERNS.sub(lambda m: (m.group(1) or m.group(2) or "") + MASK, text)


class Redactor:
    """Remove known secrets (and bearer-token patterns) from text; thread-safe, secrets can be added any time.

    :param secrets: initial secret values.
    """

    def __init__(self, secrets: list[str] | tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._encoded: tuple[bytes, ...] = ()
        for secret in secrets:
            self.add(secret)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def add(self, secret: str | None) -> None:
        """Know one more secret (an access token just issued, a rotated refresh token).

        :param secret: the value; empty or very short values are ignored.
        """
        if not secret or len(secret) < _MIN_SECRET:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first: a secret that contains another is replaced whole.
                self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))
                self._encoded = tuple(s.encode() for s in self._secrets)

    def may_contain_secret(self, data: bytes) -> bool:
        """Return whether raw bytes (an answer body) hold a known secret or a ``bearer`` word (any case).

        The hot path's cheap test: a success answer is only re-parsed for redaction when this is true.

        :param data: the raw bytes.
        """
        return any(secret in data for secret in self._encoded) or _BEARER_LOWER in data.lower()

    def redact(self, text: str) -> str:
        """Return ``text`` without any known secret or bearer token.

        :param text: text that may hold a secret.
        """
        if not text:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_bearer(text)

    def redact_value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (dicts, lists), returning a copy.

        :param value: a parsed JSON body or any JSON-able value.
        """
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value

"""JSON-lines outputs of a batch run: the failed-rows file and the written-rows manifest.

A target is a local path, a ``file://``/``s3://``/… URL or an :class:`~airflow.sdk.ObjectStoragePath`.
Without a target, the file goes to ``output_dir`` (local directory or object-storage URL) or, without that,
to the system's temporary directory, under a unique name. Such a file is created only when there is a line
to write; a target the user named is always created (possibly empty), so downstream tasks find it.

Lines are written in the order outcomes become known (chunks complete concurrently), not in input order;
each line carries its input ``row`` number.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

__all__ = ["JsonLinesSink", "is_url"]

_BUFFER = 1 << 20
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def is_url(value: Any) -> bool:
    """Return whether ``value`` is an object-storage location (``ObjectStoragePath`` or ``scheme://`` string).

    :param value: a path-like value.
    """
    return type(value).__name__ == "ObjectStoragePath" or (isinstance(value, str) and "://" in value)


def _object_path(value: Any) -> Any:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(str(value))


class JsonLinesSink:
    """A lazily opened JSON-lines file.

    :param target: where to write; ``None`` picks a unique name in ``output_dir`` or the temp directory.
    :param output_dir: directory (local or object storage URL) for an unnamed target.
    :param kind: word used in the generated file name (``failed``, ``written``).
    """

    def __init__(self, target: Any = None, *, output_dir: Any = None, kind: str = "rows") -> None:
        self.target = target
        self.output_dir = output_dir
        self.kind = kind
        self.lines = 0
        self._fh: IO[str] | None = None
        self._location: str | None = None

    @property
    def location(self) -> str | None:
        """Where the file is (a local path or a URL), or ``None`` while nothing was written."""
        return self._location

    def _name(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return f"hubcomm-{self.kind}-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"

    def _open(self) -> IO[str]:
        target = self.target
        if target is None and self.output_dir is not None:
            base = self.output_dir
            target = _object_path(base) / self._name() if is_url(base) else Path(base) / self._name()
        if target is None:
            fd, name = tempfile.mkstemp(prefix=f"hubcomm-{self.kind}-", suffix=".jsonl")
            self._location = name
            return os.fdopen(fd, "w", encoding="utf-8", buffering=_BUFFER)
        if is_url(target):
            path = _object_path(target)
            if path.protocol in ("file", "local"):
                path.parent.mkdir(parents=True, exist_ok=True)
            self._location = str(path)
            fh: IO[str] = path.open("w", encoding="utf-8")
            return fh
        local = Path(os.fspath(target)).expanduser()
        local.parent.mkdir(parents=True, exist_ok=True)
        self._location = str(local)
        return local.open("w", encoding="utf-8", buffering=_BUFFER)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line (values JSON cannot encode are written as ``str``).

        :param record: the line's content.
        """
        if self._fh is None:
            self._fh = self._open()
        self._fh.write(_encode(record) + "\n")
        self.lines += 1

    def close(self) -> str | None:
        """Flush and close; create the file first when the user named it. Return its location or ``None``."""
        if self._fh is None and self.target is not None:
            self._fh = self._open()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return self._location

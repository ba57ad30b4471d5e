"""JSON-lines outputs of a batch run: the failed-rows file and the written-rows manifest.

A target is a local path, a ``file://``/``s3://``/… URL or an :class:`~airflow.sdk.ObjectStoragePath`.
Without a target, the file goes to ``output_dir`` (local directory or object-storage URL) or, without that,
to the system's temporary directory, under a generated name: ``hubcomm-<kind>-<name>-<stamp>.jsonl`` where
the operator's ``name`` tells the DAG, task, run and try (:func:`output_name`), so the files of a killed
attempt are never taken for the next attempt's. Such a file is created only when there is a line to write; a
target the user named is always created (possibly empty), so downstream tasks find it.

A local file is written under ``<name>.partial`` and renamed when closed: a killed attempt leaves a
``.partial`` file, never a truncated file under the final name.

Lines are written in the order outcomes become known (chunks complete concurrently), not in input order;
each line carries its input ``row`` number.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["PARTIAL_SUFFIX", "JsonLinesSink", "default_output_dir", "is_url", "make_private_dir", "output_name"]

#: Suffix of a local file while it is written.
PARTIAL_SUFFIX = ".partial"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

_BUFFER = 1 << 20
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def is_url(value: Any) -> bool:
    """Return whether ``value`` is an object-storage location (``ObjectStoragePath`` or ``scheme://`` string).

    :param value: a path-like value.
    """
    return type(value).__name__ == "ObjectStoragePath" or (isinstance(value, str) and "://" in value)


def _safe(part: Any, limit: int = 60) -> str:
    return _UNSAFE.sub("_", str(part)).strip("._")[:limit] or "_"


def output_name(dag_id: str, task_id: str, run_id: str, try_number: int) -> str:
    """Return the file-name part that tells a run's attempt: ``<dag_id>-<task_id>-<run_id>-try<N>``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_`` (a run id holds ``:`` and
    ``+``); each part is cut to 60 characters.

    :param dag_id: the DAG id.
    :param task_id: the task id (with a map index for mapped tasks, e.g. ``write.3``).
    :param run_id: the DAG run id.
    :param try_number: the task instance's try number.
    """
    return f"{_safe(dag_id)}-{_safe(task_id)}-{_safe(run_id)}-try{int(try_number)}"


def default_output_dir(dag_id: str, run_id: str, task_id: str) -> str:
    """Return the default output directory of a task run: ``<tempdir>/hubcomm/<dag_id>/<run_id>/<task_id>``.

    :param dag_id: the DAG id.
    :param run_id: the DAG run id.
    :param task_id: the task id.
    """
    return os.path.join(tempfile.gettempdir(), "hubcomm", _safe(dag_id, 200), _safe(run_id, 200), _safe(task_id, 200))


def make_private_dir(path: str) -> str:
    """Create ``path`` and its missing parents readable by the owner only (``0700``); return ``path``.

    Directories that already exist keep their mode.

    :param path: a local directory.
    """
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    return path


def _object_path(value: Any) -> Any:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(str(value))


class JsonLinesSink:
    """A lazily opened JSON-lines file.

    :param target: where to write; ``None`` picks a unique name in ``output_dir`` or the temp directory.
    :param output_dir: directory (local or object storage URL) for an unnamed target.
    :param kind: word used in the generated file name (``failed``, ``written``).
    :param name: what the generated file name tells about the run (see :func:`output_name`); ``None``: a
        random part.
    """

    def __init__(
        self, target: Any = None, *, output_dir: Any = None, kind: str = "rows", name: str | None = None
    ) -> None:
        self.target = target
        self.output_dir = output_dir
        self.kind = kind
        self.name = name
        self.lines = 0
        self._fh: IO[str] | None = None
        self._location: str | None = None
        self._partial: str | None = None

    @property
    def location(self) -> str | None:
        """Where the file is (a local path or a URL), or ``None`` while nothing was written."""
        return self._location

    def _name(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        middle = f"{_safe(self.name, 250)}-{stamp}" if self.name else f"{stamp}-{uuid.uuid4().hex[:8]}"
        return f"hubcomm-{self.kind}-{middle}.jsonl"

    def _open(self) -> IO[str]:
        target = self.target
        if target is None and self.output_dir is not None:
            base = self.output_dir
            target = _object_path(base) / self._name() if is_url(base) else Path(base) / self._name()
        if target is None:
            prefix = f"hubcomm-{self.kind}-" + (f"{_safe(self.name, 250)}-" if self.name else "")
            fd, partial = tempfile.mkstemp(prefix=prefix, suffix=".jsonl" + PARTIAL_SUFFIX)
            self._partial, self._location = partial, partial[: -len(PARTIAL_SUFFIX)]
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
        self._partial = str(local) + PARTIAL_SUFFIX
        return open(self._partial, "w", encoding="utf-8", buffering=_BUFFER)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a JSON line (values JSON cannot encode are written as ``str``).

        :param record: the line's content.
        """
        if self._fh is None:
            self._fh = self._open()
        self._fh.write(_encode(record) + "\n")
        self.lines += 1

    def write_lines(self, text: str, count: int) -> None:
        """Append ``count`` records already encoded as JSON lines (one per line), in one write.

        :param text: the lines, as :meth:`write` would have written them.
        :param count: how many lines ``text`` holds.
        """
        if self._fh is None:
            self._fh = self._open()
        self._fh.write(text)
        self.lines += count

    def discard(self) -> None:
        """Close and delete what was written (a run refused before sending anything leaves no file behind).

        A target the user named is not created; a local file is deleted, an object-storage file too.
        """
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            doomed = self._partial or self._location
            with contextlib.suppress(OSError):
                if doomed is not None and not is_url(doomed):
                    os.unlink(doomed)
                elif doomed is not None:
                    _object_path(doomed).unlink()
        self._partial = self._location = None
        self.target = None

    def close(self) -> str | None:
        """Flush, close and give a local file its final name; create the file first when the user named it.

        :return: the file's location, or ``None`` when there is no file.
        """
        if self._fh is None and self.target is not None:
            self._fh = self._open()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            if self._partial is not None and self._location is not None:
                os.replace(self._partial, self._location)
                self._partial = None
        return self._location

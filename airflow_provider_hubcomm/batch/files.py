"""Where a file input is and what it holds: resolving paths and URLs, telling the format, opening, file errors.

Shared by the row readers (:mod:`~airflow_provider_hubcomm.batch.sources`) and the vectorised pass's readers
(:mod:`~airflow_provider_hubcomm.batch.parquet`, :mod:`~airflow_provider_hubcomm.batch.csvbatches`,
:mod:`~airflow_provider_hubcomm.batch.jsonbatches`).
"""

from __future__ import annotations

import gzip
import importlib
import os
import re
import zlib
from collections.abc import Callable
from typing import IO, Any, Final

from airflow_provider_hubcomm.exceptions import HubCommConfigError, HubCommValidationError

__all__ = [
    "FILE_FORMATS",
    "GZIP_ERRORS",
    "HeaderCheck",
    "check_names",
    "detect_format",
    "fail",
    "gzip_error",
    "is_storage_path",
    "open_input",
    "require_pyarrow",
    "resolve_file",
    "vectorised_input",
]

#: ``(file name, column names)`` -> None; raises when the header can never give a valid row.
HeaderCheck = Callable[[str, list[str]], None]

#: Formats ``file_format`` accepts (``ndjson`` is an alias of ``jsonl``; append ``.gz`` for gzip).
FILE_FORMATS: Final = ("csv", "jsonl", "json", "parquet")
_ALIASES: Final = {"ndjson": "jsonl", "pq": "parquet"}
_SUFFIXES: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
_SUPPORTED: Final = ".csv, .jsonl, .ndjson, .json, .parquet, and .csv.gz, .jsonl.gz, .ndjson.gz, .json.gz"
_URL_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Data errors of a gzip stream (an I/O error of the storage is *not* among them: it may be transient).
GZIP_ERRORS: Final = (EOFError, zlib.error, gzip.BadGzipFile)


def fail(name: str, where: str, message: str) -> HubCommValidationError:
    """Return the error refusing a file: its name, where in it (may be empty) and what is wrong.

    :param name: the file as shown (a URL without its query string).
    :param where: e.g. ``"line 7"``, or ``""``.
    :param message: what is wrong.
    """
    return HubCommValidationError(f"{name}, {where}: {message}" if where else f"{name}: {message}")


def check_names(name: str, header: list[str]) -> None:
    """Refuse a CSV header with an unnamed or a repeated column (after stripping).

    :param name: the file as shown.
    :param header: the header's column names, stripped.
    :raises HubCommValidationError: naming the unnamed columns' positions or the repeated names.
    """
    empty = [str(i) for i, column in enumerate(header, 1) if not column]
    if empty:
        raise fail(name, "line 1 (header)", f"column(s) {', '.join(empty)} have no name")
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise fail(name, "line 1 (header)", f"duplicate column(s): {', '.join(duplicates)}")


def gzip_error(name: str, line: int, exc: Exception) -> HubCommValidationError:
    """Return the error refusing corrupt or truncated gzip data after ``line`` (0: at the start).

    :param name: the file as shown.
    :param line: the last line read.
    :param exc: the decompressor's error.
    """
    return fail(name, f"after line {line}" if line else "", f"corrupt or truncated gzip data ({exc})")


def is_storage_path(obj: Any) -> bool:
    """Duck-type an Airflow ``ObjectStoragePath`` (a universal-pathlib path), without importing Airflow."""
    return all(hasattr(obj, attr) for attr in ("open", "suffix", "protocol"))


def resolve_file(inputs: Any) -> tuple[str, Callable[[], IO[bytes]], str | None, str]:
    """Return ``(display name, binary opener, local path or None, file name)`` for a file input.

    A URL's query string (it may hold a signature) is left out of the display name.
    """
    if isinstance(inputs, str) and _URL_RE.match(inputs):
        from airflow.sdk import ObjectStoragePath

        inputs = ObjectStoragePath(inputs)
    if isinstance(inputs, str | os.PathLike):
        path = os.path.expanduser(os.fspath(inputs))
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if os.path.isdir(path):
            raise HubCommValidationError(f"inputs {path!r} is a directory; pass one file")
        if not os.path.exists(path):
            hint = ""
            if isinstance(inputs, str) and inputs.lstrip()[:1] in ("[", "{"):
                hint = " (it looks like rendered data: use render_template_as_native_obj=True or pass the rows)"
            raise HubCommValidationError(f"inputs {os.fspath(inputs)!r} is neither an existing file nor a URL{hint}")
        return path, lambda: open(path, "rb"), path, os.path.basename(path)
    storage = inputs
    return str(storage).split("?", 1)[0], lambda: storage.open("rb"), None, str(getattr(storage, "name", ""))


def detect_format(name: str, base: str, file_format: str | None) -> tuple[str, bool]:
    """Return ``(format, gzip_compressed)`` from ``file_format`` or the suffixes of the file name ``base``."""
    base = base.lower()
    compressed = base.endswith(".gz")
    if compressed:
        base = base[:-3]
    if file_format is not None:
        fmt = file_format.lower().strip().lstrip(".")
        if fmt.endswith(".gz"):
            compressed, fmt = True, fmt[:-3]
        fmt = _ALIASES.get(fmt, fmt)
        if fmt not in FILE_FORMATS:
            allowed = ", ".join(FILE_FORMATS)
            raise HubCommValidationError(f"file_format={file_format!r} is not supported; allowed values: {allowed}")
    else:
        found = _SUFFIXES.get(os.path.splitext(base)[1])
        if found is None:
            raise HubCommValidationError(
                f"cannot tell the format of {name!r} from its suffix: supported {_SUPPORTED}; or pass file_format"
            )
        fmt = found
    if compressed and fmt == "parquet":
        raise HubCommValidationError(f"{name}: gzip-compressed Parquet is not supported (Parquet compresses itself)")
    return fmt, compressed


def open_input(name: str, opener: Callable[[], IO[bytes]]) -> IO[bytes]:
    """Open a file input for reading, refusing a missing file or a directory by name.

    :param name: the file as shown.
    :param opener: opens it (``resolve_file``'s second item).
    """
    try:
        return opener()
    except FileNotFoundError:
        raise HubCommValidationError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise HubCommValidationError(f"{name}: is a directory; pass one file") from None


def require_pyarrow() -> None:
    """Raise :class:`HubCommConfigError` naming the extra to install when pyarrow is missing (Parquet inputs)."""
    try:
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise HubCommConfigError(
            "reading Parquet needs pyarrow: pip install 'airflow-provider-hubcomm[parquet]'"
        ) from None


def vectorised_input(
    inputs: Any, file_format: str | None, fmt: str, module: str
) -> tuple[str, Callable[[], IO[bytes]], bool] | None:
    """Return ``(display name, binary opener, gzip_compressed)`` when ``inputs`` is a file of format ``fmt``.

    ``None`` when it is not one (rows in memory, another format) or when the optional pyarrow ``module`` that
    reads it is missing: the caller then takes the row path, as it always did.

    :param inputs: what the run was given.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param fmt: the format wanted (``csv``, ``jsonl``).
    :param module: the module that reads it, e.g. ``pyarrow.csv``.
    :raises HubCommValidationError: as ``iter_rows`` does for a missing file or an unknown format.
    """
    if not (isinstance(inputs, str | os.PathLike) or is_storage_path(inputs)):
        return None
    name, opener, _, base = resolve_file(inputs)
    found, compressed = detect_format(name, base, file_format)
    if found != fmt:
        return None
    try:
        importlib.import_module(module)
    except ImportError:
        return None
    return name, opener, compressed

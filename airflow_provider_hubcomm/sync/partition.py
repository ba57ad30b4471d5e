"""Partitions for many workers: rows split by a stable hash of the subscriber, one sync state per partition.

A sync that outgrows one worker runs as mapped tasks, each given ``partitions`` and its own ``partition``::

    BatchWriteStatusesOperator.partial(task_id="sync", inputs=..., state_path=..., partitions=8).expand(
        partition=list(range(8))
    )

Every task reads the whole input and keeps the rows whose subscriber hashes to its partition
(:func:`partition_of`), before validation: all rows of one subscriber (in any letter case) meet in one
partition, so duplicates and the sync state's keys never cross partitions. The hash is BLAKE2b of the UTF-8
bytes of the stripped, lower-cased subscriber id: the same on every machine, Python version and run (unlike
``hash()``, which is salted per process). Each partition keeps its state in its own sub-folder of
``state_path`` (:func:`partition_folder`), so partitions never write the same files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import PartitionSummary

__all__ = ["MAX_PARTITIONS", "PartitionFilter", "partition_folder", "partition_of"]

#: The most partitions a sync may be split into (a mapped task each).
MAX_PARTITIONS: Final = 4096


def partition_of(subscriber: str, partitions: int) -> int:
    """Return the partition (``0`` to ``partitions - 1``) of a subscriber id, the same everywhere and always.

    :param subscriber: the subscriber id (an e-mail address); surrounding blanks and letter case do not count.
    :param partitions: how many partitions there are (at least 1).
    :raises ValueError: ``partitions`` is not a whole number of at least 1.
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a whole number of at least 1, got {partitions!r}")
    key = subscriber.strip().lower().encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def partition_folder(partition: int, partitions: int) -> str:
    """Return the name of a partition's sub-folder of ``state_path``, e.g. ``partition-0003-of-0016``.

    :param partition: the partition (``0`` to ``partitions - 1``).
    :param partitions: how many partitions there are.
    """
    return f"partition-{partition:04d}-of-{partitions:04d}"


class PartitionFilter:
    """Keep the input rows of one partition; count the others (they are other tasks' rows).

    :param partition: this task's partition.
    :param partitions: how many partitions there are.
    :param subscriber_column: the input column the subscriber id is read from (after ``column_map``);
        ``None``: no column gives it (every row is then invalid, and all go to one partition).
    """

    def __init__(self, partition: int, partitions: int, subscriber_column: str | None) -> None:
        self.partition = partition
        self.partitions = partitions
        self.column = subscriber_column
        #: rows of other partitions seen so far.
        self.rows_outside = 0

    def key_of(self, raw: Mapping[str, Any]) -> int:
        """Return the partition of one raw row: a row without a usable subscriber is placed by its text.

        :param raw: the input row.
        """
        value = raw.get(self.column) if self.column is not None and isinstance(raw, Mapping) else None
        return partition_of(value if isinstance(value, str) else "" if value is None else str(value), self.partitions)

    def filter(self, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> Iterator[tuple[int, Mapping[str, Any]]]:
        """Yield the ``(row_number, raw_row)`` pairs of this partition (row numbers stay the input's).

        :param rows: every input row, as :func:`~airflow_provider_hubcomm.batch.sources.iter_rows` yields them.
        """
        mine, partitions, column = self.partition, self.partitions, self.column
        blake2b = hashlib.blake2b
        outside = 0
        try:
            for item in rows:
                raw = item[1]
                value = raw.get(column) if column is not None and isinstance(raw, Mapping) else None
                if type(value) is str:  # the hot path: partition_of, inlined
                    digest = blake2b(value.strip().lower().encode("utf-8", "surrogatepass"), digest_size=8).digest()
                    part = int.from_bytes(digest, "big") % partitions
                else:
                    part = self.key_of(raw)
                if part == mine:
                    yield item
                else:
                    outside += 1
        finally:
            self.rows_outside += outside

    def mask(self, values: Iterable[Any]) -> list[bool]:
        """Return, for the subscriber column's raw values of some rows, which rows are this partition's.

        The columnar twin of :meth:`filter` (same placement, rows of other partitions counted).

        :param values: the raw values of :attr:`column` (``None`` where a row has none).
        """
        mine, partitions = self.partition, self.partitions
        blake2b = hashlib.blake2b
        keep: list[bool] = []
        for value in values:
            text = value if type(value) is str else "" if value is None else str(value)
            digest = blake2b(text.strip().lower().encode("utf-8", "surrogatepass"), digest_size=8).digest()
            keep.append(int.from_bytes(digest, "big") % partitions == mine)
        self.rows_outside += keep.count(False)
        return keep

    def summary(self) -> PartitionSummary:
        """Return the summary's ``partition`` block."""
        return {"index": self.partition, "count": self.partitions, "rows_outside": self.rows_outside}

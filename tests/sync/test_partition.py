"""Partitions: a stable hash of the subscriber, the row filter of one mapped task, and the arguments' checks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.exceptions import HubCommConfigError
from airflow_provider_hubcomm.sync import partition_of
from airflow_provider_hubcomm.sync.partition import MAX_PARTITIONS, PartitionFilter, partition_folder


def independent(subscriber: str, partitions: int) -> int:
    """The documented rule, written out again: BLAKE2b-64 of the stripped, lower-cased UTF-8 id, big-endian."""
    key = subscriber.strip().lower().encode("utf-8")
    return int(hashlib.blake2b(key, digest_size=8).hexdigest(), 16) % partitions


IDS = ["a@b.co", "contact1@example.com", "Zoë@exämple.com", "用户@例子.公司", "", "x" * 300 + "@example.com"]


class TestPartitionOf:
    def test_known_values_never_change(self) -> None:
        # Pinned: a change here moves every subscriber to another partition (and to another state folder).
        assert [partition_of(s, 16) for s in IDS[:5]] == [13, 7, 11, 13, 4]
        assert [partition_of(s, 1000) for s in IDS[:5]] == [869, 487, 827, 869, 876]

    @pytest.mark.parametrize("partitions", [1, 2, 7, 16, 1000, MAX_PARTITIONS])
    def test_agrees_with_the_documented_rule(self, partitions: int) -> None:
        ids = [*IDS, *(f"user{i}@example.com" for i in range(500)), *(f"ÜSER{i}@ÉXAMPLE.com" for i in range(500))]
        assert [partition_of(s, partitions) for s in ids] == [independent(s, partitions) for s in ids]

    @pytest.mark.parametrize(
        "variants",
        [
            ["a@b.co", "A@B.CO", "  a@B.co\t", "\na@b.co "],
            ["zoë@exämple.com", "ZOË@EXÄMPLE.COM", "Zoë@Exämple.com "],
            ["straße@example.com", "STRAßE@example.com"],
        ],
    )
    def test_letter_case_and_blanks_do_not_count(self, variants: list[str]) -> None:
        assert len({partition_of(v, 997) for v in variants}) == 1

    def test_the_same_in_another_process_with_another_hash_seed(self) -> None:
        ids = [f"seed{i}@example.com" for i in range(50)]
        code = (
            "import json, sys; from airflow_provider_hubcomm.sync import partition_of; "
            "print(json.dumps([partition_of(s, 64) for s in json.loads(sys.argv[1])]))"
        )
        import json

        env = {**os.environ, "PYTHONHASHSEED": "12345"}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(ids)], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == [partition_of(s, 64) for s in ids]

    def test_spreads_100k_ids_evenly_over_16_partitions(self) -> None:
        counts = Counter(partition_of(f"contact{i}@example.com", 16) for i in range(100_000))
        assert sorted(counts) == list(range(16))
        assert all(abs(n - 6250) < 0.05 * 6250 for n in counts.values()), counts  # 4 standard deviations

    @pytest.mark.parametrize("partitions", [0, -1, 2.0, True, "4"])
    def test_partitions_must_be_a_whole_number_of_at_least_one(self, partitions: Any) -> None:
        with pytest.raises(ValueError, match="partitions must be a whole number of at least 1"):
            partition_of("a@b.co", partitions)

    def test_folder_names_sort_in_partition_order(self) -> None:
        assert partition_folder(3, 16) == "partition-0003-of-0016"
        names = [partition_folder(i, 1000) for i in range(1000)]
        assert sorted(names) == names


class TestPartitionFilter:
    def test_each_row_goes_to_exactly_one_partition_with_its_row_number(self) -> None:
        rows: list[tuple[int, Any]] = [(n, {"email": f"user{n % 700}@example.com", "x": n}) for n in range(1, 2001)]
        rows += [(2001, {"email": None}), (2002, {"email": 42}), (2003, {}), (2004, ["not", "a", "mapping"])]
        filters = [PartitionFilter(i, 5, "email") for i in range(5)]
        kept = [list(f.filter(iter(rows))) for f in filters]
        numbers = sorted(n for part in kept for n, _ in part)
        assert numbers == [n for n, _ in rows]  # every row once, numbered as in the input
        for i, part in enumerate(kept):
            assert filters[i].rows_outside == len(rows) - len(part)
            for _, raw in part:
                if isinstance(raw, dict) and isinstance(raw.get("email"), str):
                    assert partition_of(raw["email"], 5) == i
            assert filters[i].summary() == {"index": i, "count": 5, "rows_outside": len(rows) - len(part)}

    def test_rows_of_one_subscriber_meet_whatever_their_letter_case(self) -> None:
        rows = [(1, {"s": "Ann@Example.com"}), (2, {"s": " ann@example.COM"}), (3, {"s": "ANN@EXAMPLE.COM"})]
        kept = [len(list(PartitionFilter(i, 8, "s").filter(rows))) for i in range(8)]
        assert sorted(kept) == [0] * 7 + [3]

    def test_without_a_subscriber_column_every_row_lands_in_one_partition(self) -> None:
        rows = [(n, {"a": n}) for n in range(10)]
        kept = [len(list(PartitionFilter(i, 4, None).filter(rows))) for i in range(4)]
        assert sorted(kept) == [0, 0, 0, 10]


class TestArguments:
    def test_both_given_is_accepted(self) -> None:
        options = BatchWriteOptions.model_validate({"partitions": "8", "partition": 7})  # templated: text
        assert (options.partitions, options.partition) == (8, 7)
        assert (BatchWriteOptions().partitions, BatchWriteOptions().partition) == (None, None)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (
                {"partitions": 4},
                "partition: invalid value None: must be given with partitions=4: a whole number between 0 and 3",
            ),
            ({"partition": 1}, "partition: invalid value 1: needs partitions (how many partitions there are)"),
            (
                {"partitions": 4, "partition": 4},
                "partition: invalid value 4: must be a whole number between 0 and 3 (partitions=4)",
            ),
            (
                {"partitions": 4, "partition": -1},
                "partition: invalid value -1: must be a whole number between 0 and 4095",
            ),
            (
                {"partitions": 0, "partition": 0},
                "partitions: invalid value 0: must be a whole number between 1 and 4096",
            ),
            (
                {"partitions": 5000, "partition": 0},
                "partitions: invalid value 5000: must be a whole number between 1 and 4096",
            ),
            (
                {"partitions": 2.5, "partition": 0},
                "partitions: invalid value 2.5: must be a whole number between 1 and 4096",
            ),
        ],
    )
    def test_bad_arguments_are_named_with_what_is_allowed(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(HubCommConfigError) as info:
            BatchWriteOptions.model_validate(kwargs)
        assert str(info.value).splitlines()[1:] == [message]

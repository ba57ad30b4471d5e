"""OpenLineage: input and output datasets and the run's counts (needs the OpenLineage provider, a test extra)."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow_provider_hubcomm.lineage import batch_lineage, input_dataset_name, output_dataset_name

SUMMARY: dict[str, Any] = {
    "conn_id": "hubcomm_default",
    "channel": "EMAIL",
    "rows_read": 10,
    "written": 6,
    "failed": 1,
    "skipped": 3,
    "skipped_by_reason": {"invalid": 1, "duplicate": 2, "unchanged": 0},
    "dry_run": False,
}


class TestNames:
    def test_output_is_the_accounts_consent_data(self) -> None:
        assert output_dataset_name("https://api.hubapi.com", 123456) == (
            "hubspot://api.hubapi.com",
            "123456/communication-preferences/EMAIL",
        )
        assert output_dataset_name("http://127.0.0.1:8080", None)[1] == "default/communication-preferences/EMAIL"

    @pytest.mark.parametrize(
        ("inputs", "expected"),
        [
            ("/data/consent.csv", ("file", "/data/consent.csv")),
            ("s3://aws_conn@bucket/extracts/consent.parquet", ("s3://bucket", "extracts/consent.parquet")),
            ("gs://bucket/x.csv?signature=secret", ("gs://bucket", "x.csv")),
            ("file:///tmp/x.jsonl", ("file", "/tmp/x.jsonl")),
        ],
    )
    def test_input_file_and_object_storage(self, inputs: str, expected: tuple[str, str]) -> None:
        assert input_dataset_name(inputs) == expected

    def test_rows_from_an_upstream_task(self) -> None:
        rows = [{"subscriberIdString": "a@example.com"}]
        assert input_dataset_name(rows, ("sync", "extract")) == ("airflow://sync", "extract.xcom")
        assert input_dataset_name(rows) is None


class TestBatchLineage:
    def test_datasets_and_facets_of_one_run(self) -> None:
        lineage = batch_lineage(
            inputs="/data/consent.csv",
            upstream=None,
            summary=SUMMARY,
            base_url="https://api.hubapi.com",
            portal_id=42,
        )
        [source] = lineage.inputs
        [target] = lineage.outputs
        assert (source.namespace, source.name) == ("file", "/data/consent.csv")
        assert source.facets["inputStatistics"].rowCount == 10
        assert (target.namespace, target.name) == ("hubspot://api.hubapi.com", "42/communication-preferences/EMAIL")
        assert target.facets["outputStatistics"].rowCount == 6
        facet = lineage.run_facets["hubcomm"]
        assert (facet.rowsRead, facet.written, facet.failed, facet.skipped) == (10, 6, 1, 3)
        assert facet.skippedByReason == {"invalid": 1, "duplicate": 2}

    def test_single_contact_call_has_only_an_output(self) -> None:
        lineage = batch_lineage(inputs=None, upstream=None, summary=None, base_url="https://api.hubapi.com")
        assert lineage.inputs == []
        assert [d.name for d in lineage.outputs] == ["default/communication-preferences/EMAIL"]
        assert lineage.run_facets == {}

    def test_facets_serialise_as_openlineage_json(self) -> None:
        from openlineage.client.serde import Serde

        lineage = batch_lineage(inputs="/x.csv", upstream=None, summary=SUMMARY, base_url="https://h")
        data = json.loads(Serde.to_json(lineage.run_facets["hubcomm"]))
        assert data["rowsRead"] == 10
        assert data["skippedByReason"] == {"invalid": 1, "duplicate": 2}
        assert data["_producer"]

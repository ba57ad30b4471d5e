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


class TestOperators:
    """The operators answer Airflow's OpenLineage provider after a real run against the fake."""

    def test_batch_write_from_a_file(self, hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json(portal_id="4242"))
        path = tmp_path / "consent.csv"
        path.write_text(
            "subscriberIdString,subscriptionId,statusState\n"
            "a@example.com,101,UNSUBSCRIBED\nb@example.com,101,UNSUBSCRIBED\nb@example.com,101,UNSUBSCRIBED\n",
            encoding="utf-8",
        )
        op = BatchWriteStatusesOperator(task_id="write", inputs=str(path), output_dir=str(tmp_path / "out"))
        summary = op.execute({})
        lineage = op.get_openlineage_facets_on_complete(None)
        [source] = lineage.inputs
        [target] = lineage.outputs
        assert (source.namespace, source.name) == ("file", str(path))
        assert source.facets["inputStatistics"].rowCount == 3
        assert target.namespace == f"hubspot://127.0.0.1:{hubcomm_fake.port}"
        assert target.name == "4242/communication-preferences/EMAIL"
        assert target.facets["outputStatistics"].rowCount == summary["written"] == 2
        assert lineage.run_facets["hubcomm"].skippedByReason == {"duplicate": 1}

    def test_rows_from_an_upstream_task_and_a_single_contact_call(
        self, hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
    ) -> None:
        from datetime import datetime

        from airflow.sdk import DAG, task

        from airflow_provider_hubcomm.operators import BatchUnsubscribeAllOperator, UnsubscribeAllOperator

        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json())
        with DAG(dag_id="lineage_dag", schedule=None, start_date=datetime(2026, 1, 1)):

            @task
            def extract() -> list[dict[str, str]]:
                return [{"subscriberIdString": "c@example.com"}]

            bulk = BatchUnsubscribeAllOperator(task_id="erase", inputs=extract(), output_dir=str(tmp_path))
            single = UnsubscribeAllOperator(task_id="one", subscriber_id="d@example.com")
        bulk.inputs = [{"subscriberIdString": "c@example.com"}]  # what rendering the XComArg gives at run time
        bulk.execute({})
        [source] = bulk.get_openlineage_facets_on_complete(None).inputs
        assert (source.namespace, source.name) == ("airflow://lineage_dag", "extract.xcom")
        single.execute({})
        lineage = single.get_openlineage_facets_on_complete(None)
        assert lineage.inputs == []
        assert [d.name for d in lineage.outputs] == ["default/communication-preferences/EMAIL"]

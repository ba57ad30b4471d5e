"""Reading one request: the hook calls planned once (:func:`hook_reads`), the answers mapped, the switch to singles."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_hubcomm.exceptions import HubCommAuthError, HubCommNotFoundError, is_missing_scopes
from airflow_provider_hubcomm.models import BatchReadResponse, StatusResponse
from airflow_provider_hubcomm.readback.loop import ReadRequest
from airflow_provider_hubcomm.readback.reads import HookRead, StatusReader, actuals_from_response, hook_reads
from airflow_provider_hubcomm.readback.rows import ReadbackRow
from tests.sensors.readback import record

MISSING = HubCommAuthError(403, {"category": "MISSING_SCOPES", "message": "scopes"})


def _request(*subscribers: str) -> ReadRequest:
    rows = [ReadbackRow.from_record(record(s, 101, "SUBSCRIBED")) for s in subscribers]
    return ReadRequest(0, list(subscribers), rows)


def _statuses(subscriber: str, status: str) -> StatusResponse:
    return StatusResponse.model_validate(
        {"status": "COMPLETE", "results": [{"subscriberIdString": subscriber, "subscriptionId": 101, "status": status}]}
    )


class TestHookReads:
    def test_one_batch_read(self) -> None:
        reads = hook_reads(StatusReader("batch", "EMAIL", logging.getLogger("t")), _request("a@x.com", "b@x.com"))
        assert next(reads) == HookRead("batch_read", ["a@x.com", "b@x.com"])
        answer = BatchReadResponse.model_validate(
            {"results": [{"subscriberIdString": "A@x.com", "statuses": [{"subscriptionId": 101, "status": "x"}]}]}
        )
        with pytest.raises(StopIteration) as done:
            reads.send(answer)
        assert done.value.value == {("a@x.com", 101): "X"}

    def test_missing_scopes_switches_to_single_reads_and_a_404_reads_nothing(self) -> None:
        reader = StatusReader("batch", "EMAIL", logging.getLogger("t"))
        reads = hook_reads(reader, _request("a@x.com", "b@x.com"))
        assert next(reads).method == "batch_read"
        assert reads.throw(MISSING) == HookRead("get_statuses", "a@x.com")
        assert reader.mode == "single"
        assert reads.throw(HubCommNotFoundError(404, {})) == HookRead("get_statuses", "b@x.com")
        with pytest.raises(StopIteration) as done:
            reads.send(_statuses("b@x.com", "UNSUBSCRIBED"))
        assert done.value.value == {("b@x.com", 101): "UNSUBSCRIBED"}

    def test_any_other_error_is_raised(self) -> None:
        reads = hook_reads(StatusReader("batch", "EMAIL", logging.getLogger("t")), _request("a@x.com"))
        next(reads)
        other = HubCommAuthError(401, {"message": "no"})
        with pytest.raises(HubCommAuthError):
            reads.throw(other)


class TestStatusReader:
    def test_only_missing_scopes_switches_to_single(self, caplog):
        reader = StatusReader("batch", "EMAIL", logging.getLogger("t"))
        other = HubCommAuthError(403, {"category": "FORBIDDEN", "message": "no"})
        assert not is_missing_scopes(other)
        assert not reader.fall_back(other)
        assert reader.mode == "batch"
        missing = HubCommAuthError(403, {"category": "MISSING_SCOPES", "message": "scopes"})
        with caplog.at_level(logging.WARNING):
            assert reader.fall_back(missing)
        assert reader.mode == "single"
        assert "403 MISSING_SCOPES" in caplog.text


class TestAnswers:
    def test_actuals_from_a_207_answer(self):
        answer = BatchReadResponse.model_validate(
            {
                "status": "COMPLETE",
                "results": [
                    {"subscriberIdString": "A@x.com", "statuses": [{"subscriptionId": 101, "status": "subscribed"}]}
                ],
                "errors": [{"category": "OBJECT_NOT_FOUND", "message": "b@x.com"}],
                "numErrors": 1,
            }
        )
        assert actuals_from_response(answer) == {("a@x.com", 101): "SUBSCRIBED"}

"""Docs that run: every Python snippet of README.md and docs/**/*.md is compiled and executed.

Per snippet (see :mod:`tests.docs.snippets` for the extraction and the skip marker):

* a snippet that builds a DAG (``with DAG(...)`` or ``@dag``) runs as written in a fresh namespace, with
  ``AIRFLOW_CONN_HUBCOMM_DEFAULT`` pointing at the bundled fake. Its DAGs must validate, serialise as the
  dag processor does, hold every literal ``task_id`` and every ``a >> b`` edge of the source, and building
  them must send nothing to HubSpot (thin operators: no I/O at parse time). Tasks are never run;
* a snippet that defines ``test_*`` functions runs as written, then each test function is called with the
  pytest fixtures it names (``hubcomm_fake``, ``monkeypatch``, ...): the documented tests pass;
* any other snippet is a fragment (an operator call, hook usage): it runs inside a DAG context, with the
  provider's public names pre-imported; operators it builds land in that DAG and are checked as above,
  and hook calls go to the fake.

A snippet that uses a name it neither defines nor imports (other than the prelude's, for fragments) fails:
that is how ``inputs=extract.output`` with an undefined ``extract`` is caught.
"""

from __future__ import annotations

import ast
from collections import Counter
from typing import Any

import pytest

from tests.docs.snippets import (
    DOC_FILES,
    ROOT,
    Snippet,
    extract,
    python_snippets,
    shape_of,
    stray_markers,
)

SNIPPETS = python_snippets()
#: At most this many snippets may opt out (``<!-- snippet: skip (reason) -->``); raise it only with a reason.
MAX_SKIPPED = 0
#: Names a fragment may use without importing them.
PRELUDE_NAMES = (
    "BatchStatusSensor",
    "BatchStatusTrigger",
    "BatchWriteStatusesOperator",
    "DAG",
    "HubCommHook",
    "SetStatusOperator",
    "UnsubscribeAllOperator",
    "task",
)


def _prelude() -> dict[str, Any]:
    from airflow.sdk import DAG, task

    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.operators import (
        BatchWriteStatusesOperator,
        SetStatusOperator,
        UnsubscribeAllOperator,
    )
    from airflow_provider_hubcomm.sensors import BatchStatusSensor
    from airflow_provider_hubcomm.triggers import BatchStatusTrigger

    names = {
        "BatchStatusSensor": BatchStatusSensor,
        "BatchStatusTrigger": BatchStatusTrigger,
        "BatchWriteStatusesOperator": BatchWriteStatusesOperator,
        "DAG": DAG,
        "HubCommHook": HubCommHook,
        "SetStatusOperator": SetStatusOperator,
        "UnsubscribeAllOperator": UnsubscribeAllOperator,
        "task": task,
    }
    assert set(names) == set(PRELUDE_NAMES)
    return names


def _serialise(dag: Any) -> None:
    """Serialise ``dag`` the way the dag processor stores it (catches arguments that cannot be stored)."""
    from airflow.serialization import serialized_objects

    serializer = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
    data = serializer.to_dict(dag)
    assert {task.get("__var", task).get("task_id") for task in data["dag"]["tasks"]} == set(dag.task_dict)


def _task_ids_of(value: Any) -> list[str]:
    """Task ids behind a name in the snippet's namespace: an operator, an XComArg, or a list of them."""
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.xcom_arg import XComArg

    if isinstance(value, list | tuple):
        return [tid for item in value for tid in _task_ids_of(item)]
    if isinstance(value, BaseOperator):
        return [value.task_id]
    if isinstance(value, XComArg):
        return [op.task_id for op, _ in value.iter_references()]
    return []


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> list[str]:
    if isinstance(node, ast.Name) and node.id in namespace:
        return _task_ids_of(namespace[node.id])
    if isinstance(node, ast.List | ast.Tuple):
        return [tid for item in node.elts for tid in _resolve(item, namespace)]
    return []


def _check_dags(snippet: Snippet, dags: list[Any], namespace: dict[str, Any]) -> None:
    shape = shape_of(snippet.code)
    tasks: dict[str, Any] = {}
    for dag in dags:
        assert dag.task_dict, f"{snippet.id}: DAG {dag.dag_id!r} has no tasks"
        dag.validate()
        dag.check_cycle()
        _serialise(dag)
        for task_id, task in dag.task_dict.items():
            assert task_id not in tasks, f"{snippet.id}: task id {task_id!r} is in two DAGs"
            tasks[task_id] = task
    missing = shape.task_ids - set(tasks)
    assert not missing, f"{snippet.id}: tasks {sorted(missing)} were built outside every DAG"
    for upstream, downstream in shape.edges:
        for up in _resolve(upstream, namespace):
            for down in _resolve(downstream, namespace):
                assert down in tasks[up].downstream_task_ids, f"{snippet.id}: {up} >> {down} is not in the DAG"


def _dags_in(namespace: dict[str, Any]) -> list[Any]:
    """The DAGs a snippet built: those it names, and those of the tasks it names."""
    from airflow.sdk import DAG, BaseOperator
    from airflow.sdk.definitions.xcom_arg import XComArg

    unique: dict[int, Any] = {}
    for value in namespace.values():
        if isinstance(value, XComArg):
            value = next(iter(value.iter_references()), (None, None))[0]
        if isinstance(value, BaseOperator) and value.has_dag():
            value = value.dag
        if isinstance(value, DAG):
            unique[id(value)] = value
    return list(unique.values())


def _run(snippet: Snippet, request: pytest.FixtureRequest, fake: Any) -> str:
    """Execute one snippet; return its kind (``dag``, ``tests`` or ``fragment``)."""
    shape = shape_of(snippet.code)
    code = compile(snippet.code, str(snippet.path), "exec")
    namespace: dict[str, Any] = {"__name__": f"docs_snippet_{snippet.line}"}
    if shape.defines_dag or shape.test_functions:
        assert not shape.free_names, f"{snippet.id}: uses {sorted(shape.free_names)} without defining or importing them"
        exec(code, namespace)
        if shape.test_functions:
            for name in shape.test_functions:
                function = namespace[name]
                fixtures = function.__code__.co_varnames[: function.__code__.co_argcount]
                function(*(request.getfixturevalue(fixture) for fixture in fixtures))
            return "tests"
        dags = _dags_in(namespace)
        assert dags, f"{snippet.id}: builds a DAG but neither it nor any of its tasks has a name"
        _check_dags(snippet, dags, namespace)
        assert fake.request_log == [], f"{snippet.id}: building the DAG sent requests to HubSpot"
        return "dag"
    unknown = shape.free_names - set(PRELUDE_NAMES)
    assert not unknown, f"{snippet.id}: uses {sorted(unknown)} without defining or importing them"
    namespace.update(_prelude())
    dag_class = namespace["DAG"]
    with dag_class(f"docs_fragment_{snippet.line}", schedule=None) as dag:
        exec(code, namespace)
    if dag.task_dict:
        _check_dags(snippet, [dag], namespace)
        assert fake.request_log == [], f"{snippet.id}: building operators sent requests to HubSpot"
    else:
        assert not shape.task_ids, f"{snippet.id}: names tasks {sorted(shape.task_ids)} but built none"
    return "fragment"


@pytest.fixture
def docs_env(hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """The default connection points at a fresh fake; the snippet runs in a temporary directory."""
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json())
    monkeypatch.chdir(tmp_path)
    return hubcomm_fake


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, docs_env: Any, request: pytest.FixtureRequest) -> None:
    if snippet.skip_reason is not None:
        pytest.skip(f"opted out in the docs: {snippet.skip_reason}")
    _run(snippet, request, docs_env)


def test_inventory() -> None:
    """The snippets are found (README and every page with Python), skips are rare, explained and placed."""
    files = Counter(s.path for s in SNIPPETS)
    assert files[ROOT / "README.md"] >= 3
    for page in ("connection.md", "operators.md", "sensor.md", "testing.md", "index.md"):
        assert files[ROOT / "docs" / page] >= 1, page
    skipped = [s for s in SNIPPETS if s.skip_reason is not None]
    assert all(s.skip_reason for s in skipped), [s.id for s in skipped if not s.skip_reason]
    assert len(skipped) <= MAX_SKIPPED, [s.id for s in skipped]
    unknown_markers = [s.id for path in DOC_FILES for s in extract(path) if s.marker not in (None, "skip")]
    assert not unknown_markers, f"unknown snippet markers at {unknown_markers}"
    stray = {str(p.relative_to(ROOT)): lines for p in DOC_FILES if (lines := stray_markers(p))}
    assert not stray, f"snippet markers not right before a code fence: {stray}"
    print(f"{len(SNIPPETS)} Python snippets in {len(files)} files, {len(skipped)} skipped")


def test_extractor_finds_indented_and_marked_blocks(tmp_path: Any) -> None:
    """The extractor handles fences inside list items and reads the skip marker and its reason."""
    page = tmp_path / "page.md"
    page.write_text(
        "1. Step:\n\n    ```python\n    x = 1\n    ```\n\n"
        "<!-- snippet: skip (needs a real account) -->\n```python\ny = 2\n```\n"
        "```bash\necho hi\n```\n"
    )
    first, second, third = extract(page)
    assert (first.lang, first.code, first.skip_reason) == ("python", "x = 1\n", None)
    assert (second.code, second.skip_reason) == ("y = 2\n", "needs a real account")
    assert third.lang == "bash"
    assert stray_markers(page) == []
    page.write_text("<!-- snippet: skip (orphan) -->\n\ntext\n")
    assert stray_markers(page) == [1]


def test_fragment_with_undefined_name_fails(request: pytest.FixtureRequest, hubcomm_fake: Any) -> None:
    """The README's old ``inputs=extract.output`` (``extract`` undefined there) is refused, not waved through."""
    bad = Snippet(
        ROOT / "README.md",
        1,
        "python",
        'write = BatchWriteStatusesOperator(task_id="write", inputs=extract.output)\n',
    )
    with pytest.raises(AssertionError, match=r"uses \['extract'\]"):
        _run(bad, request, hubcomm_fake)


def test_taskflow_output_attribute_is_an_error(request: pytest.FixtureRequest, hubcomm_fake: Any) -> None:
    """With a TaskFlow task, ``extract.output`` raises: the snippet test reports it as a failure."""
    code = (
        "from airflow.sdk import DAG, task\n"
        "from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator\n\n"
        'with DAG("d", schedule=None) as dag:\n\n'
        "    @task\n"
        "    def extract() -> list:\n"
        "        return []\n\n"
        '    write = BatchWriteStatusesOperator(task_id="write", inputs=extract.output)\n'
    )
    with pytest.raises(AttributeError):
        _run(Snippet(ROOT / "README.md", 1, "python", code), request, hubcomm_fake)


def test_operator_outside_the_dag_is_reported(request: pytest.FixtureRequest, hubcomm_fake: Any) -> None:
    """Every literal ``task_id`` of the source must be a task of a loaded DAG."""
    code = (
        "from airflow.sdk import DAG\n"
        "from airflow_provider_hubcomm.operators import UnsubscribeAllOperator\n\n"
        'with DAG("d", schedule=None) as dag:\n'
        '    a = UnsubscribeAllOperator(task_id="a", subscriber_id="x@example.com")\n'
        'b = UnsubscribeAllOperator(task_id="b", subscriber_id="y@example.com")\n'
    )
    with pytest.raises(AssertionError, match=r"tasks \['b'\] were built outside every DAG"):
        _run(Snippet(ROOT / "README.md", 1, "python", code), request, hubcomm_fake)


def test_dag_snippet_sending_requests_fails(
    request: pytest.FixtureRequest, hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a DAG must not talk to HubSpot; a snippet whose DAG file does is reported."""
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json())
    code = (
        "from airflow.sdk import DAG\n"
        "from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook\n"
        "from airflow_provider_hubcomm.operators import UnsubscribeAllOperator\n\n"
        'with DAG("d", schedule=None) as dag:\n'
        '    UnsubscribeAllOperator(task_id="a", subscriber_id="x@example.com")\n'
        '    HubCommHook("hubcomm_default").get_definitions()\n'
    )
    with pytest.raises(AssertionError, match="sent requests to HubSpot"):
        _run(Snippet(ROOT / "README.md", 1, "python", code), request, hubcomm_fake)

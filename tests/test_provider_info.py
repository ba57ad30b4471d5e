from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from airflow_provider_hubcomm.get_provider_info import get_provider_info


def test_entry_point_points_at_provider_info() -> None:
    (ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_hubcomm")]
    info = ep.load()()
    assert info["package-name"] == "airflow-provider-hubcomm"
    conn = info["connection-types"][0]
    assert conn["connection-type"] == "hubcomm"
    assert conn["hook-class-name"] == "airflow_provider_hubcomm.hooks.hubcomm.HubCommHook"
    secrets = {k for k, v in conn["conn-fields"].items() if v["schema"].get("format") == "password"}
    assert secrets == {"client_secret", "refresh_token"}


def test_provider_info_validates_against_airflow_schema() -> None:
    import json

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_listed_module_imports() -> None:
    import importlib

    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                assert importlib.import_module(module)
    hook = info["connection-types"][0]["hook-class-name"]
    module, _, name = hook.rpartition(".")
    assert getattr(importlib.import_module(module), name).conn_type == "hubcomm"


def test_airflow_cli_lists_provider_and_connection_type() -> None:
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "--output", "plain"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "hubcomm" in out
    assert "airflow_provider_hubcomm.hooks.hubcomm.HubCommHook" in out
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "plain"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "airflow-provider-hubcomm" in listed

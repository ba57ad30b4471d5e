"""One fresh-interpreter sample of the DAG-parse import cost (item 4 of ``benchmarks/run.py``).

``python benchmarks/_import_time.py VARIANT`` imports ``airflow.sdk`` (the baseline every DAG file pays),
then times, in the same process, what a DAG file using the provider adds, and prints JSON:
``{"sdk_wall_s", "sdk_cpu_s", "extra_wall_s", "extra_cpu_s"}``. Variants:

* ``sdk``: nothing more (the extra is ~0; the whole-process figures are the baseline);
* ``operator``: ``from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator``;
* ``operator+sensor``: that, plus ``from airflow_provider_hubcomm.sensors import BatchStatusSensor``;
* ``lazy-proto``: the same two imports after placeholder modules were put in ``sys.modules`` for the
  provider modules the proposed fix stops importing at module top (``hooks.hubcomm``, ``models``,
  ``triggers.hubcomm`` and with it ``airflow.triggers.base``, ``readback.rows``, ``readback.state``): what a
  DAG file would pay once those imports move into the methods that need them (``hook`` property, ``execute``,
  ``_execute_deferrable``). No provider file is changed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

LAZY = (
    "airflow_provider_hubcomm.hooks.hubcomm",
    "airflow_provider_hubcomm.models",
    "airflow_provider_hubcomm.triggers.hubcomm",
    "airflow_provider_hubcomm.readback.rows",
    "airflow_provider_hubcomm.readback.state",
)


class _Placeholder:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: object, **kwargs: object) -> _Placeholder:
        return self

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(())


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: _Placeholder(f"{name}.{attr}")  # type: ignore[method-assign]
    return module


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "operator+sensor"
    w0, c0 = time.perf_counter(), time.process_time()
    import airflow.sdk  # noqa: F401

    w1, c1 = time.perf_counter(), time.process_time()
    if variant == "lazy-proto":
        for name in LAZY:
            sys.modules[name] = _stub(name)
    if variant in ("operator", "operator+sensor", "lazy-proto"):
        from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator  # noqa: F401
    if variant in ("operator+sensor", "lazy-proto"):
        from airflow_provider_hubcomm.sensors import BatchStatusSensor  # noqa: F401
    w2, c2 = time.perf_counter(), time.process_time()
    result = {"sdk_wall_s": w1 - w0, "sdk_cpu_s": c1 - c0, "extra_wall_s": w2 - w1, "extra_cpu_s": c2 - c1}
    if "-v" in sys.argv:
        result["provider_modules"] = sorted(m for m in sys.modules if m.startswith("airflow_provider_hubcomm"))
    os.write(1, (json.dumps(result) + "\n").encode())


if __name__ == "__main__":
    main()

"""The test command a newcomer runs: a pytest run leaves no temporary Airflow home behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.docs.snippets import ROOT


def run_probe(tmp_path: Path, body: str) -> tuple[Path, str]:
    """Run one test function ``body`` under ``tests/conftest.py`` in a pytest subprocess with its own ``TMPDIR``.

    :return: that ``TMPDIR``, and what the test wrote to the file named by ``{probe}`` in ``body``.
    """
    temp = tmp_path / "tmp"
    temp.mkdir()
    probe = tmp_path / "probe.txt"
    test_file = tmp_path / "test_probe.py"
    test_file.write_text("import os\nimport tempfile\n\n\n" + body.format(probe=repr(str(probe))))
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    env.pop("AIRFLOW_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(test_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return temp, probe.read_text()


def test_a_test_run_removes_its_airflow_home(tmp_path: Path) -> None:
    """``tests/conftest.py`` makes ``hubcomm-airflow-home-*`` in the temp dir; the run removes it at exit."""
    temp, written = run_probe(
        tmp_path,
        "def test_home():\n"
        "    open({probe}, 'w').write(os.environ['AIRFLOW_HOME'])\n"
        "    assert os.path.isdir(os.environ['AIRFLOW_HOME'])\n",
    )
    home = Path(written)
    assert home.parent == temp
    assert home.name.startswith("hubcomm-airflow-home-")
    assert not home.exists()
    assert not list(temp.glob("hubcomm-airflow-home-*"))


def test_a_test_keeps_its_temp_files_under_pytests_base_temp(tmp_path: Path) -> None:
    """A test's temp files (a run's default output folder, a spool) go to its own folder, which pytest prunes."""
    temp, written = run_probe(
        tmp_path, "def test_temp():\n    open({probe}, 'w').write(tempfile.mkdtemp(prefix='hubcomm-probe-'))\n"
    )
    made = Path(written)
    assert made.parent.parent.parent.name.startswith("pytest-of-"), made  # <temp>/pytest-of-<user>/pytest-N/tempK
    assert made.is_relative_to(temp)
    assert not list(temp.glob("hubcomm-probe-*"))  # nothing in the temp dir itself

"""Run the bundled fake HubSpot in its own process, so its work never shares a GIL with the client measured.

``FakeProcess(**knobs)`` starts ``FakeHubSpot(**knobs)`` in a spawned child process on ``127.0.0.1`` and talks
to it over a pipe: ``counters()``, ``reset_counters()``, ``configure(**knobs)``, ``statuses()`` (how many
statuses the fake holds), ``status(subscriber, subscription_id)``. Use it as a context manager; ``stop()``
ends the child by its pid only.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from typing import Any


def _serve(knobs: dict[str, Any], conn: Any) -> None:
    from airflow_provider_hubcomm.testing import FakeHubSpot

    fake = FakeHubSpot(**knobs)
    fake.start()
    conn.send({"url": fake.url, "token": fake.token, "port": fake.port})
    try:
        while True:
            try:
                cmd, args = conn.recv()
            except EOFError:
                return
            if cmd == "stop":
                conn.send(None)
                return
            try:
                if cmd == "counters":
                    answer: Any = fake.counters
                elif cmd == "reset_counters":
                    answer = fake.reset_counters()
                elif cmd == "configure":
                    answer = fake.configure(**args)
                elif cmd == "statuses":
                    answer = len(fake.snapshot())
                elif cmd == "status":
                    answer = fake.status(*args)
                elif cmd == "connection_json":
                    answer = fake.connection_json(**args)
                elif cmd == "request_log":
                    answer = fake.request_log
                elif cmd == "cpu_seconds":
                    import resource

                    ru = resource.getrusage(resource.RUSAGE_SELF)
                    answer = ru.ru_utime + ru.ru_stime
                else:
                    answer = RuntimeError(f"unknown command {cmd!r}")
            except Exception as exc:  # hand the error to the caller
                answer = exc
            conn.send(answer)
    finally:
        fake.stop()


class FakeProcess:
    """``FakeHubSpot`` in a child process.

    :param knobs: ``FakeConfig`` knobs, e.g. ``latency=0.1, requests_per_window=190``.
    """

    def __init__(self, **knobs: Any) -> None:
        self.knobs = knobs
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(knobs, child), name="hubcomm-fake-bench", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60):
            self._proc.kill()
            raise RuntimeError("fake HubSpot did not start within 60 s")
        info = self._conn.recv()
        self.url: str = info["url"]
        self.token: str = info["token"]
        self.port: int = info["port"]

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _call(self, cmd: str, args: Any = None) -> Any:
        self._conn.send((cmd, args))
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def counters(self) -> dict[str, int]:
        return self._call("counters")

    def reset_counters(self) -> None:
        self._call("reset_counters")

    def configure(self, **knobs: Any) -> None:
        self._call("configure", knobs)

    def statuses(self) -> int:
        return self._call("statuses")

    def status(self, subscriber: str, subscription_id: int) -> dict[str, Any] | None:
        return self._call("status", (subscriber, subscription_id))

    def connection_json(self, **extra: Any) -> str:
        return self._call("connection_json", extra)

    def request_log(self) -> list[dict[str, Any]]:
        return self._call("request_log")

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) the fake's process used so far."""
        return float(self._call("cpu_seconds"))

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(EOFError, OSError, BrokenPipeError):
                self._call("stop")
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

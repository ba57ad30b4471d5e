"""``hubcomm-fake`` / ``python -m airflow_provider_hubcomm.testing``: run the fake HubSpot as a server.

Prints the URL, then a line ready to paste into a shell (``export AIRFLOW_CONN_HUBCOMM_DEFAULT='...'``), and
serves until SIGTERM or SIGINT (or ``--run-for`` seconds). Every :class:`FakeConfig` knob has a flag
(``--error-rate-5xx 0.1``); ``--help`` shows each one's default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.testing._config import BATCH_MODES, FakeConfig

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

__all__ = ["build_parser", "main"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SCALARS: dict[str, type] = {"float": float, "int": int, "str": str}


def plain(text: str) -> str:
    """Return docstring text without reST markup (``literal``, :role:`~a.b.Name`), whitespace collapsed.

    :param text: a fragment of a docstring.
    """
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", text)
    text = text.replace("``", "")
    return " ".join(text.split())


def _knob_help() -> dict[str, str]:
    doc = FakeConfig.__doc__ or ""
    found = re.findall(r":param (\w+): (.+?)(?=\n\s*:param |\Z)", doc, flags=re.S)
    return {name: plain(text) for name, text in found}


def _show(value: Any) -> str:
    """Return a default as a user would type it on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "(empty)"
    return str(value)


def _optional_int(value: str) -> int | None:
    return None if value.lower() in {"", "0", "none", "unlimited"} else int(value)


def _oauth_client(value: str) -> dict[str, str]:
    parts = value.split(":")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("expected CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN")
    return {"client_id": parts[0], "client_secret": parts[1], "refresh_token": parts[2]}


def _int_list(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def _str_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser: one flag per :class:`FakeConfig` knob plus the CLI's own options."""
    parser = argparse.ArgumentParser(
        prog="hubcomm-fake",
        description="Fake HubSpot Communication Preferences API (for tests, demos and fault injection). "
        "Prints its URL and an export line for the Airflow connection, then serves until SIGTERM or SIGINT.",
    )
    helps = _knob_help()
    defaults = FakeConfig()

    def text(name: str, default: str | None = None) -> str:
        shown = _show(getattr(defaults, name)) if default is None else default
        return f"{helps.get(name, '')} (default: {shown})"

    special = {
        "subscriptions",
        "private_app_tokens",
        "oauth_clients",
        "requests_per_window",
        "max_batch_size",
        "daily_limit",
        "api_versions",
        "partial_status",
        "unknown_subscription_status",
        "seed",
        "batch_mode",
    }
    for f in dataclasses.fields(FakeConfig):
        if f.name in special:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=f.name, action=action, default=None, help=text(f.name))
        else:
            parser.add_argument(flag, dest=f.name, type=_SCALARS[str(f.type)], default=None, help=text(f.name))
    for name in ("requests_per_window", "max_batch_size", "daily_limit"):
        flag = "--" + name.replace("_", "-")
        hint = text(name, "unlimited; 0 or none also mean unlimited")
        parser.add_argument(flag, dest=name, type=_optional_int, default=None, help=hint)
    parser.add_argument("--api-versions", type=_str_list, default=None, help=text("api_versions") + "; comma-separated")
    parser.add_argument("--partial-status", type=int, choices=(200, 207), default=None, help=text("partial_status"))
    parser.add_argument(
        "--unknown-subscription-status",
        type=int,
        choices=(400, 404),
        default=None,
        help=text("unknown_subscription_status"),
    )
    parser.add_argument("--seed", type=int, default=None, help=text("seed"))
    parser.add_argument("--batch-mode", choices=BATCH_MODES, default=None, help=text("batch_mode"))
    parser.add_argument(
        "--subscriptions", type=_int_list, default=None, help="comma-separated subscription ids (default: 101,102,103)"
    )
    parser.add_argument(
        "--private-app-token",
        dest="private_app_tokens",
        action="append",
        default=None,
        help="accepted private-app token; repeatable (default: pat-fake-0123456789abcdef)",
    )
    parser.add_argument(
        "--oauth-client",
        dest="oauth_clients",
        type=_oauth_client,
        action="append",
        default=None,
        help="OAuth app as CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN; repeatable "
        "(default: fake-client-id:fake-client-secret:fake-refresh-token)",
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback (default: off)")
    parser.add_argument(
        "--conn-id", default="hubcomm_default", help="connection id of the printed line (default: hubcomm_default)"
    )
    parser.add_argument(
        "--auth",
        choices=("private_app", "oauth"),
        default="private_app",
        help="auth of the printed connection (default: private_app)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the URL to this file once listening (default: none)")
    parser.add_argument(
        "--state-file", type=Path, help="on exit, dump final state and counters here as JSON (default: none)"
    )
    parser.add_argument("--run-for", type=float, help="stop after this many seconds (default: until a signal)")
    return parser


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake until SIGTERM/SIGINT; return the exit code.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    knob_names = {f.name for f in dataclasses.fields(FakeConfig)}
    knobs: dict[str, Any] = {k: v for k, v in vars(args).items() if k in knob_names and v is not None}
    host = knobs.get("host", "127.0.0.1")
    if host not in _LOOPBACK and not args.allow_remote:
        parser.error(f"--host {host} is not loopback; pass --allow-remote to listen there")
    try:
        config = FakeConfig(**knobs)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))

    from airflow_provider_hubcomm.testing._fake import FakeHubSpot

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    fake = FakeHubSpot(config)
    try:
        fake.start()
    except OSError as exc:
        print(f"hubcomm-fake: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    try:
        env = f"AIRFLOW_CONN_{args.conn_id.upper()}"
        print(fake.url)
        print(f"export {env}={shlex.quote(fake.connection_json(auth=args.auth))}", flush=True)
        if args.ready_file:
            _write_atomic(args.ready_file, fake.url + "\n")
        deadline = None if args.run_for is None else time.monotonic() + args.run_for
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        fake.stop()
        if args.state_file:
            _write_atomic(args.state_file, json.dumps(fake.dump_state(), indent=2, sort_keys=True) + "\n")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

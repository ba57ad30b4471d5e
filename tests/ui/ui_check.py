"""Drive the Airflow 3 UI in headless Chromium and check the ``hubcomm`` connection form end to end.

What it does, all on 127.0.0.1 and in a temporary ``AIRFLOW_HOME`` (SQLite):

1. starts the bundled fake HubSpot (``python -m airflow_provider_hubcomm.testing``) and ``airflow api-server``
   (SimpleAuthManager; ``AIRFLOW__CORE__TEST_CONNECTION=Enabled``), each in its own process group;
2. starts the system Chromium through the system chromedriver (Selenium; nothing is downloaded);
3. opens Admin → Connections → Add Connection, picks "HubSpot Communication Preferences" and checks the
   labelled fields, password inputs and hidden fields; saves a private-app, an OAuth and a bad-token
   connection and reads them back through the REST API;
4. clicks each connection's Test button and checks the toast: success against the fake, HubSpot's own
   message for the bad token;
5. saves screenshots (form, extra fields, Test success, Test failure) and stops everything it started.

Run it from the repository root (``scripts/ui_check.sh`` is the wrapper)::

    .venv/bin/python tests/ui/ui_check.py --screenshots docs/img
    .venv/bin/python tests/ui/ui_check.py --login        # log in through the login page instead of all-admins

Exit status 0 when every check passed, 1 otherwise; a summary of every check is printed either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-device-scale-factor=1",
)
HOOK_NAME = "HubSpot Communication Preferences"
CONN_TYPE = "hubcomm"

#: Label → (input name, expected input type) of the standard fields the form must show.
STANDARD_FIELDS = {
    "API base URL": ("host", "text"),
    "Private app access token": ("password", "password"),
}
#: Standard fields the form must hide (they mean nothing to HubSpot).
HIDDEN_FIELDS = ("schema", "port", "login")
#: Label → (input name, expected input type) of the extra fields (``conn-fields`` of the provider info).
EXTRA_FIELDS = {
    "Auth type": ("element_auth_type", "hidden"),  # a select; its value travels in a hidden input
    "OAuth client ID": ("element_client_id", "text"),
    "OAuth client secret": ("element_client_secret", "password"),
    "OAuth refresh token": ("element_refresh_token", "password"),
    "OAuth token URL": ("element_token_url", "text"),
    "Business unit (brand) ID": ("element_business_unit_id", "text"),
    "Brand IDs of the account": ("element_business_unit_ids", "text"),
    "Account (portal) ID": ("element_portal_id", "text"),
    "API version": ("element_api_version", "text"),
    "Rate budget (requests per 10 s)": ("element_requests_per_10s", "text"),
    "Timeout (seconds)": ("element_timeout", "text"),
    "Max retries": ("element_max_retries", "text"),
}
#: The message the api-server of Airflow 3.3.1/3.3.2 answers when the list's Test button sends ``port: 0``
#: for a connection without a port (apache/airflow#73298, fixed after 3.3.2).
PORT_ZERO_BUG = "differs from the stored connection"

ROOT = Path(__file__).resolve().parents[2]


class CheckFailed(Exception):
    """A check failed and the run cannot go on."""


@dataclass
class Report:
    """Every check, in order, with its outcome and detail."""

    results: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def check(self, name: str, ok: bool, detail: str = "", *, fatal: bool = False) -> bool:
        self.results.append((name, ok, detail))
        elapsed = time.monotonic() - self.started
        print(f"[{'PASS' if ok else 'FAIL'} {elapsed:5.1f}s] {name}{': ' + detail if detail else ''}", flush=True)
        if not ok and fatal:
            raise CheckFailed(f"{name}: {detail}")
        return ok

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"[NOTE] {text}", flush=True)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(ok for _, ok, _ in self.results)

    @property
    def failed(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.results if not ok]

    def summary(self) -> str:
        passed = sum(ok for _, ok, _ in self.results)
        lines = [f"{passed}/{len(self.results)} checks passed in {time.monotonic() - self.started:.1f} s"]
        lines += [f"  FAILED {line}" for line in self.failed]
        lines += [f"  note: {text}" for text in self.notes]
        return "\n".join(lines)


# -- processes -------------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    """A child started in its own session, so the whole process group can be stopped."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], log: Path) -> Proc:
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        return cls(name, popen, log)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM the whole process group (the session this child leads)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, wait for all of it, then SIGKILL whatever is left."""
        self.terminate()
        pgid = self.popen.pid  # session leader: its pid is the group id
        deadline = time.monotonic() + timeout
        while (self.popen.poll() is None or _group_alive(pgid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def airflow_env(home: Path, *, login: bool) -> dict[str, str]:
    """The environment of the Airflow children: inherited minus any ``AIRFLOW*`` variable, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False" if login else "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__EXPOSE_CONFIG": "False",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


def wait_for(what: str, probe: Callable[[], bool], timeout: float, proc: Proc | None = None) -> None:
    """Poll ``probe`` until it returns true; fail with the child's log tail on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise CheckFailed(f"{what}: {proc.name} exited with {proc.popen.returncode}\n{proc.tail()}")
        with contextlib.suppress(Exception):
            if probe():
                return
        time.sleep(0.2)
    raise CheckFailed(f"{what}: not ready after {timeout:.0f} s" + (f"\n{proc.tail()}" if proc else ""))


# -- REST API ----------------------------------------------------------------------------------------------


@dataclass
class Api:
    """The api-server's public REST API (``/api/v2``), with a bearer token when auth is on."""

    base: str
    token: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self._headers(), timeout=30)

    def patch(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.patch(f"{self.base}{path}", json=body, headers=self._headers(), timeout=30)

    def login(self, username: str, password: str) -> None:
        answer = httpx.post(f"{self.base}/auth/token", json={"username": username, "password": password}, timeout=30)
        answer.raise_for_status()
        self.token = answer.json()["access_token"]


# -- browser -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """Yield a Selenium driver on the system Chromium + chromedriver (Selenium Manager is never used)."""
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to read the Test call's answer
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


class UI:
    """The handful of UI gestures the check needs, with explicit waits."""

    def __init__(self, driver: Any, base: str, report: Report) -> None:
        from selenium.common.exceptions import (
            ElementClickInterceptedException,
            ElementNotInteractableException,
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        self.d = driver
        self.base = base
        self.report = report
        # Dialogs and accordions animate: an element may exist before it takes clicks or keys; retry those.
        transient = (
            NoSuchElementException,
            StaleElementReferenceException,
            ElementNotInteractableException,
            ElementClickInterceptedException,
        )
        self.wait = WebDriverWait(driver, 20, poll_frequency=0.1, ignored_exceptions=transient)

    # locating
    def xpath(self, path: str, root: Any = None) -> Any:
        from selenium.webdriver.common.by import By

        return self.wait.until(lambda _: (root or self.d).find_element(By.XPATH, path))

    def visible(self, path: str, root: Any = None) -> list[Any]:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        shown = []
        for el in (root or self.d).find_elements(By.XPATH, path):
            with contextlib.suppress(StaleElementReferenceException):
                if el.is_displayed():
                    shown.append(el)
        return shown

    def click(self, path: str, root: Any = None) -> None:
        """Click the element at ``path`` once it is displayed, enabled and takes the click."""

        def attempt(_: Any) -> bool:
            element = self.xpath(path, root)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            element.click()
            return True

        self.wait.until(attempt)

    def type_text(self, path: str, text: str, root: Any = None) -> None:
        """Type ``text`` into the element at ``path`` once it takes keys."""

        def attempt(_: Any) -> bool:
            self.xpath(path, root).send_keys(text)
            return True

        self.wait.until(attempt)

    def field(self, dialog: Any, label: str) -> Any:
        """The field group (label + input + helper text) whose label reads ``label``."""
        return self.xpath(
            f".//div[@data-scope='field' and @data-part='root'][.//label[normalize-space(text())={_q(label)}]]",
            dialog,
        )

    # pages
    def login(self, username: str, password: str) -> None:
        self.d.get(f"{self.base}/")
        self.type_text("//input[@name='username' or @id='username' or @autocomplete='username']", username)
        self.type_text("//input[@type='password']", password)
        self.click("//button[@type='submit' or normalize-space()='Sign in' or normalize-space()='Login']")
        self.wait.until(lambda d: "/login" not in d.current_url and self.visible("//button[normalize-space()='Admin']"))

    def open_connections(self, *, via_menu: bool = False) -> None:
        """Home → Admin menu → Connections (or the page's URL directly)."""
        if via_menu:
            self.d.get(f"{self.base}/")
            self.click("//button[normalize-space()='Admin']")
            self.click("//a[normalize-space()='Connections']")
        else:
            self.d.get(f"{self.base}/connections")
        self.wait.until(lambda d: d.current_url.rstrip("/").endswith("/connections"))
        self.xpath("//button[normalize-space()='Add Connection']")

    def open_add_dialog(self, conn_id: str) -> Any:
        """Add Connection → fill the id → pick the HubSpot connection type; return the dialog."""
        self.click("//button[normalize-space()='Add Connection']")
        dialog = self.xpath("//*[@role='dialog']")
        self.type_text(".//input[@name='connection_id']", conn_id, dialog)
        self.type_text(".//input[@role='combobox']", HOOK_NAME[:12], dialog)
        self.click(f"//*[@role='option' and normalize-space()={_q(HOOK_NAME)}]")
        self.wait.until(lambda _: self.visible(".//input[@name='host']", dialog))
        return dialog

    def open_section(self, dialog: Any, title: str) -> None:
        path = f".//button[normalize-space()={_q(title)}]"
        button = self.xpath(path, dialog)
        if button.get_attribute("aria-expanded") != "true":
            self.click(path, dialog)
        self.wait.until(lambda _: button.get_attribute("aria-expanded") == "true")
        time.sleep(0.3)  # let the accordion animation settle before screenshots and typing

    def select_option(self, dialog: Any, label: str, value: str) -> None:
        """Pick ``value`` in the react-select of field ``label``."""
        self.type_text(".//input[@role='combobox']", value, self.field(dialog, label))
        self.click(f"//*[@role='option' and normalize-space()={_q(value)}]")

    def save(self, dialog: Any) -> None:
        self.click(".//button[normalize-space()='Save']", dialog)
        self.wait.until(lambda d: not self.visible("//*[@role='dialog']"))

    @staticmethod
    def test_button(conn_id: str) -> str:
        """XPath of the Test Connection button in ``conn_id``'s row."""
        return f"//tr[.//td[normalize-space()={_q(conn_id)}]]//button[@aria-label='Test Connection']"

    def click_test(self, conn_id: str) -> TestOutcome:
        """Reload the list, click ``conn_id``'s Test button; return the toast and the HTTP exchange behind it."""
        self.d.get(f"{self.base}/connections")
        self.xpath(self.test_button(conn_id))
        self.d.get_log("performance")  # drop what the page load logged
        self.click(self.test_button(conn_id))
        toast = self.xpath("//*[@data-scope='toast' and @data-part='root']")
        self.wait.until(lambda _: toast.text.strip())
        title = toast.find_element("xpath", ".//*[@data-part='title']").text.strip()
        descriptions = toast.find_elements("xpath", ".//*[@data-part='description']")
        status, body = self._test_exchange()
        self.unhover()
        return TestOutcome(title, descriptions[0].text.strip() if descriptions else "", status, body)

    def unhover(self) -> None:
        """Move the mouse off the buttons, so no tooltip covers the screenshot."""
        from selenium.webdriver.common.action_chains import ActionChains

        heading = self.xpath("//button[normalize-space()='Add Connection']")
        ActionChains(self.d).move_to_element_with_offset(heading, -400, 0).perform()

    def _test_exchange(self) -> tuple[int | None, str]:
        """Status and body of the browser's ``POST /api/v2/connections/test`` (from the performance log)."""
        request_id, status = None, None
        for entry in self.d.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.responseReceived" and params["response"]["url"].endswith(
                "/api/v2/connections/test"
            ):
                request_id, status = params["requestId"], int(params["response"]["status"])
        if request_id is None:
            return None, ""
        with contextlib.suppress(Exception):
            return status, self.d.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})["body"]
        return status, ""


@dataclass
class TestOutcome:
    """What a click on Test produced: the toast, and the api-server's answer behind it."""

    __test__ = False  # not a pytest class

    title: str
    text: str
    status: int | None
    body: str

    def __str__(self) -> str:
        return f"toast {self.title!r} / {self.text!r}; HTTP {self.status} {self.body[:300]}"


def _q(text: str) -> str:
    """Quote ``text`` as an XPath string literal."""
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


def screenshot(element: Any, path: Path, report: Report, limit: int = 300_000) -> None:
    """Save a PNG of ``element`` (or of the window for a driver) and check it stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saver = getattr(element, "save_screenshot", None) or element.screenshot
    saver(str(path))
    size = path.stat().st_size
    report.check(f"screenshot {path.name}", 0 < size < limit, f"{size / 1024:.0f} KB at {path}")


# -- the check -----------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """What the servers gave us."""

    api: Api
    ui_base: str
    fake_url: str
    token: str
    oauth: dict[str, str]
    port_bug: bool = False


def check_form(ui: UI, setup: Setup, report: Report, shots: Path | None) -> None:
    """Add the private-app connection through the form, checking every field on the way."""
    conn_id = "hubcomm_ui"
    ui.open_connections(via_menu=True)
    dialog = ui.open_add_dialog(conn_id)
    report.check("connection type offered", True, HOOK_NAME)

    for label, (name, kind) in STANDARD_FIELDS.items():
        group = ui.field(dialog, label)
        found = [el for el in group.find_elements("xpath", ".//input") if el.get_attribute("name") == name]
        actual = found[0].get_attribute("type") if found else None
        report.check(f"standard field '{label}'", actual == kind, f"input name={name} type={actual}")
    for name in HIDDEN_FIELDS:
        shown = ui.visible(f".//input[@name={_q(name)}]", dialog)
        report.check(f"field '{name}' hidden", not shown)
    placeholder = ui.xpath(".//input[@name='host']", dialog).get_attribute("placeholder")
    report.check("host placeholder", placeholder == "https://api.hubapi.com", repr(placeholder))

    ui.type_text(".//input[@name='host']", setup.fake_url, dialog)
    ui.type_text(".//input[@name='password']", setup.token, dialog)
    if shots:
        screenshot(dialog, shots / "connection-form.png", report)

    ui.open_section(dialog, "Extra Fields")
    for label, (name, kind) in EXTRA_FIELDS.items():
        group = ui.field(dialog, label)
        inputs = [el for el in group.find_elements("xpath", ".//input") if el.get_attribute("name") == name]
        actual = inputs[0].get_attribute("type") if inputs else None
        helper = group.find_elements("xpath", ".//*[@data-part='helper-text']")
        ok = actual == kind and bool(helper and helper[0].text.strip())
        report.check(f"extra field '{label}'", ok, f"input name={name} type={actual}, description={bool(helper)}")
    auth = ui.xpath(".//input[@name='element_auth_type']", dialog).get_attribute("value")
    report.check("auth type defaults to private_app", auth == "private_app", repr(auth))

    ui.type_text(".//input[@name='element_business_unit_id']", "0", dialog)
    ui.type_text(".//input[@name='element_requests_per_10s']", "100", dialog)
    if shots:
        ui.d.set_window_size(1280, 1900)  # the whole dialog, not just what fits in 900 px
        time.sleep(0.3)
        screenshot(dialog, shots / "connection-form-extra.png", report)
        ui.d.set_window_size(1280, 900)
    ui.save(dialog)
    report.check("form saved", bool(ui.visible(f"//td[normalize-space()={_q(conn_id)}]")), conn_id)

    answer = setup.api.get(f"/api/v2/connections/{conn_id}")
    report.check("REST GET after save", answer.status_code == 200, f"HTTP {answer.status_code}", fatal=True)
    conn = answer.json()
    extra = json.loads(conn.get("extra") or "{}")
    expected = {"auth_type": "private_app", "business_unit_id": 0, "requests_per_10s": 100}
    report.check(
        "saved connection",
        conn["conn_type"] == CONN_TYPE
        and conn["host"] == setup.fake_url
        and conn["password"] not in (None, "")
        and all(extra.get(k) == v for k, v in expected.items()),
        f"conn_type={conn['conn_type']} host={conn['host']} password={conn['password']!r} extra={extra}",
    )


def add_connection(ui: UI, conn_id: str, fields: dict[str, str], auth_type: str | None = None) -> None:
    """Add a connection through the form: ``host``/``password`` and extra fields by name."""
    ui.open_connections()
    dialog = ui.open_add_dialog(conn_id)
    for name in ("host", "password"):
        if name in fields:
            ui.type_text(f".//input[@name={_q(name)}]", fields[name], dialog)
    extras = {k: v for k, v in fields.items() if k not in ("host", "password")}
    if extras or auth_type:
        ui.open_section(dialog, "Extra Fields")
        if auth_type:
            ui.select_option(dialog, "Auth type", auth_type)
        for name, value in extras.items():
            ui.type_text(f".//input[@name={_q('element_' + name)}]", value, dialog)
    ui.save(dialog)


def check_oauth(ui: UI, setup: Setup, report: Report) -> None:
    """An OAuth connection through the form: the select, the secret extras, and how the API masks them."""
    conn_id = "hubcomm_ui_oauth"
    add_connection(ui, conn_id, {"host": setup.fake_url, **setup.oauth}, auth_type="oauth")
    conn = setup.api.get(f"/api/v2/connections/{conn_id}").json()
    extra = json.loads(conn.get("extra") or "{}")
    report.check(
        "OAuth connection saved",
        extra.get("auth_type") == "oauth"
        and extra.get("client_id") == setup.oauth["client_id"]
        and extra.get("client_secret") not in (None, "", setup.oauth["client_secret"])
        and extra.get("refresh_token") not in (None, "", setup.oauth["refresh_token"]),
        f"extra as the REST API returns it (secrets masked): {extra}",
    )


def apply_port_workaround(setup: Setup, report: Report, conn_id: str) -> None:
    """Store the fake's port in the (hidden) port field, so the list's Test button sends a matching port."""
    port = int(setup.fake_url.rsplit(":", 1)[1])
    answer = setup.api.patch(
        f"/api/v2/connections/{conn_id}?update_mask=port",
        {"connection_id": conn_id, "conn_type": CONN_TYPE, "port": port},
    )
    report.check(f"workaround: PATCH port of {conn_id}", answer.status_code == 200, f"HTTP {answer.status_code}")


def run_test(ui: UI, setup: Setup, report: Report, conn_id: str) -> TestOutcome:
    """Click Test for ``conn_id``; work around the Airflow 3.3.1/3.3.2 ``port: 0`` bug once it has shown."""
    if setup.port_bug:
        apply_port_workaround(setup, report, conn_id)
    outcome = ui.click_test(conn_id)
    if outcome.status == 400 and PORT_ZERO_BUG in outcome.body and not setup.port_bug:
        setup.port_bug = True
        report.note(
            "Airflow bug apache/airflow#73298 (3.3.1, 3.3.2): the list's Test button sends port 0 for a "
            f"connection without a port; the api-server answers {outcome.status} {outcome.body} and the toast "
            f"only says {outcome.text!r}. Workaround applied to every connection from here on: store the "
            "fake's port in the hidden port field through the REST API (the hook ignores it: the host "
            "already carries a port)."
        )
        apply_port_workaround(setup, report, conn_id)
        outcome = ui.click_test(conn_id)
    return outcome


def _succeeded(outcome: TestOutcome) -> bool:
    return (
        outcome.title == "Test Connection Successful"
        and "Connected to HubSpot" in outcome.text
        and json.loads(outcome.body or "{}").get("status") is True
    )


def check_test_button(ui: UI, setup: Setup, report: Report, shots: Path | None) -> None:
    """Test succeeds against the fake (private app and OAuth) and shows HubSpot's message on a bad token."""
    outcome = run_test(ui, setup, report, "hubcomm_ui")
    report.check("Test (private app) succeeds", _succeeded(outcome), str(outcome))
    if shots:
        screenshot(ui.d, shots / "connection-test-success.png", report)

    outcome = run_test(ui, setup, report, "hubcomm_ui_oauth")
    report.check("Test (OAuth) succeeds", _succeeded(outcome), str(outcome))

    add_connection(ui, "hubcomm_ui_bad_token", {"host": setup.fake_url, "password": "pat-na1-not-a-valid-token"})
    outcome = run_test(ui, setup, report, "hubcomm_ui_bad_token")
    report.check(
        "Test (bad token) fails with HubSpot's message",
        outcome.title == "Test Connection Failed"
        and all(
            part in outcome.text for part in ("HTTP 401", "INVALID_AUTHENTICATION", "access token provided is invalid")
        ),
        str(outcome),
    )
    if shots:
        screenshot(ui.d, shots / "connection-test-bad-token.png", report)


def start_servers(work: Path, report: Report, *, login: bool) -> tuple[Setup, list[Proc], list[int]]:
    """Start the fake and the api-server; return what the browser needs, the processes and their ports."""
    procs: list[Proc] = []
    home = work / "airflow-home"
    (home / "dags").mkdir(parents=True)
    env = airflow_env(home, login=login)
    python = sys.executable
    airflow = str(Path(python).parent / "airflow")

    token = f"pat-ui-check-{secrets.token_hex(8)}"
    oauth = {
        "client_id": "ui-check-client",
        "client_secret": f"ui-check-secret-{secrets.token_hex(6)}",
        "refresh_token": f"ui-check-refresh-{secrets.token_hex(6)}",
    }
    ready = work / "fake.ready"
    fake_argv = [python, "-m", "airflow_provider_hubcomm.testing", "--port", "0", "--ready-file", str(ready)]
    fake_argv += ["--private-app-token", token, "--oauth-client", ":".join(oauth.values())]
    procs.append(Proc.start("fake HubSpot", fake_argv, env, work / "fake.log"))

    t0 = time.monotonic()
    migrate = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    report.check("airflow db migrate", migrate.returncode == 0, f"{time.monotonic() - t0:.1f} s")
    if migrate.returncode:
        raise CheckFailed(migrate.stdout[-3000:] + migrate.stderr[-3000:])

    wait_for("fake HubSpot", lambda: ready.exists() and bool(ready.read_text().strip()), 30, procs[0])
    fake_url = ready.read_text().strip()
    fake_port = int(fake_url.rsplit(":", 1)[1])

    port = free_port()
    t0 = time.monotonic()
    server = Proc.start(
        "api-server", [airflow, "api-server", "-H", "127.0.0.1", "-p", str(port)], env, work / "api.log"
    )
    procs.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_for("api-server", lambda: httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200, 90, server)
    report.check("api-server up", True, f"{base} in {time.monotonic() - t0:.1f} s")

    api = Api(base)
    if login:
        passwords = home / "simple_auth_manager_passwords.json.generated"
        wait_for("generated password file", passwords.exists, 30, server)
        api.login("admin", json.loads(passwords.read_text())["admin"])
    meta = httpx.get(f"{base}/ui/connections/hook_meta", headers=api._headers(), timeout=30).json()
    ours = [m for m in meta if m.get("connection_type") == CONN_TYPE]
    report.check("hook_meta lists hubcomm", bool(ours), ours[0]["hook_name"] if ours else "absent", fatal=True)
    return Setup(api, base, fake_url, token, oauth), procs, [port, fake_port]


def run(shots: Path | None, *, login: bool = False, keep: bool = False) -> Report:
    """Run the whole check; always stop what was started. Return the report."""
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="hubcomm-ui-check-"))
    procs: list[Proc] = []
    ports: list[int] = []
    try:
        setup, procs, ports = start_servers(work, report, login=login)
        with chromium(work / "chromium-profile") as driver:
            ui = UI(driver, setup.ui_base, report)
            if login:
                passwords = work / "airflow-home" / "simple_auth_manager_passwords.json.generated"
                ui.login("admin", json.loads(passwords.read_text())["admin"])
                report.check("logged in through the login page", True)
            check_form(ui, setup, report, shots)
            check_oauth(ui, setup, report)
            check_test_button(ui, setup, report, shots)
    except CheckFailed as err:
        report.check("run", False, str(err))
    except Exception as err:
        message = getattr(err, "msg", None) or str(err)  # Selenium errors: drop the native stack
        report.check("run", False, f"{type(err).__name__}: {message}")
        ours = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == __file__]
        print("".join(traceback.format_list(ours)), file=sys.stderr)
        for proc in procs:
            print(f"--- {proc.name} log tail ---\n{proc.tail()}", file=sys.stderr)
    finally:
        for proc in procs:
            proc.terminate()  # all at once, then wait for each group
        for proc in procs:
            proc.stop()
        left = [p for p in ports if port_open(p)]
        report.check("no listener left", not left, f"ports {ports} closed" if not left else f"still open: {left}")
        if keep:
            report.note(f"artifacts kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", type=Path, help="save PNG screenshots here (e.g. docs/img)")
    parser.add_argument("--login", action="store_true", help="auth on: log in with the generated password")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME and logs")
    args = parser.parse_args(argv)
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            print(f"{binary} is missing: apt-get install -y chromium chromium-driver", file=sys.stderr)
            return 2
    report = run(args.screenshots, login=args.login, keep=args.keep)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

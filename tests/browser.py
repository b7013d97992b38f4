"""A page opened in a real browser (Debian's headless `chromium`), driven over the DevTools protocol.

`open_page(path)` loads a local HTML file and returns what a reader would hit: console errors and
uncaught exceptions, resources that failed to load, and images that did not decode (an <img> whose
naturalWidth is 0 once the page has loaded), plus a screenshot.  `make test` installs chromium
(Debian package) where it can; the tests that use it skip outside CI when it is missing, and fail in
CI with that reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Flags for a closed network and a root user (as the machine documentation gives them): without the
# background-networking ones chromium keeps trying to reach Google's hosts.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
]
START_TIMEOUT = 60
LOAD_TIMEOUT = 60

IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))"""


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images: int = 0
    title: str = ""
    screenshot: bytes = b""

    @property
    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.exceptions]
            + [f"failed to load: {m}" for m in self.failed_requests]
            + [f"broken image: {m}" for m in self.broken_images]
        )


def chromium_path() -> str:
    """The chromium binary, or skip (fail in CI) with how to get it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    why = (
        "chromium is not installed: `make test` installs Debian's `chromium` package when run as root "
        "(apt-get install chromium); the report's browser test needs it"
    )
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def open_page(path: Path) -> PageReport:
    """Load ``path`` in headless chromium and report what went wrong on the page."""
    from websockets.sync.client import connect

    binary = chromium_path()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = _devtools_port(Path(profile), proc)
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        target = next(p for p in pages if p.get("type") == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as ws:
            return _inspect(_Session(ws), Path(path).resolve().as_uri())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    port_file = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode} before it opened its DevTools port")
        if port_file.exists():
            text = port_file.read_text().split("\n")[0].strip()
            if text:
                return int(text)
        time.sleep(0.1)
    raise TimeoutError(f"chromium did not open its DevTools port within {START_TIMEOUT} s")


class _Session:
    """Commands and events of one DevTools target over its websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv(timeout=LOAD_TIMEOUT))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_for(self, method: str) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv(timeout=LOAD_TIMEOUT))
            if msg.get("method") == method:
                return msg
            self.events.append(msg)
        raise TimeoutError(f"no {method} within {LOAD_TIMEOUT} s")


def _inspect(s: _Session, url: str) -> PageReport:
    for domain in ("Page", "Runtime", "Log", "Network"):
        s.send(f"{domain}.enable")
    s.send("Page.navigate", url=url)
    s.wait_for("Page.loadEventFired")
    report = PageReport()
    images = json.loads(s.send("Runtime.evaluate", expression=IMAGES_JS, returnByValue=True)["result"]["value"])
    report.images = len(images)
    report.broken_images = [
        f"{i['alt'] or '(no alt)'} ({i['width']}x{i['height']})" for i in images if not i["complete"] or i["width"] == 0
    ]
    report.title = s.send("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
    shot = s.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    report.screenshot = base64.b64decode(shot["data"])
    for e in s.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            report.exceptions.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            report.console_errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            report.failed_requests.append(params.get("errorText", "") + " " + params.get("requestId", ""))
    return report

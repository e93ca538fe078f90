"""Browser tests: the real app, started per test over its own fresh demo database, driven by Chromium.

The demo is loaded once per test process (it takes seconds) and each test gets a copy of it, so a test may
change its database (before the server starts, or through the app) without touching another's. Each server
runs on a free port with its own log; each test has its own browser context (cookies included).

Chromium is Debian's (`apt-get install chromium`), never a download: set MENTORSHIP_CHROMIUM to use another
binary. Without it the tests are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Locator, Page, expect, sync_playwright
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from core.db import init_db, make_engine, make_session_factory
from core.demo import DEMO_USERS, load_demo

ROOT = Path(__file__).parents[2]
CHROMIUM = Path(os.environ.get("MENTORSHIP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
PASSWORDS = {u.username: u.password for u in DEMO_USERS}
COOKIE_NAME = "attendance_desk_auth"
SCREENSHOTS = ROOT / "test-results" / "screenshots"
FAILURES = ROOT / "test-results" / "failures"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_SECONDS = 30
TIMEOUT_MS = 20_000
# A fresh server's first script run imports pandas, Altair and the pages: on a loaded 2-core CI machine that
# alone was seen to exceed 20 s, so the first page of a test gets longer.
FIRST_RUN_TIMEOUT_MS = 60_000
_FAILED = pytest.StashKey[bool]()  # set on a test's item when its setup or call failed

expect.set_options(timeout=TIMEOUT_MS)


# --- the database ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo history, loaded once per test process, relative to the moment the run started."""
    path = tmp_path_factory.mktemp("e2e_demo") / "demo.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    with make_session_factory(engine).begin() as session:
        load_demo(session, now=datetime.now(UTC), seed=7)
    engine.dispose()  # closes the last connection, which folds the WAL into the file
    return path


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the demo database (change it freely before the server starts)."""
    path = tmp_path / "demo.db"
    shutil.copyfile(demo_template, path)
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# --- the app server -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:  # noqa: S310 (our own server)
            return bool(response.read().decode().strip() == "ok")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_server(db: Path, workdir: Path, cookie_key: str | None) -> Server:
    """`streamlit run app/main.py` on a free port over `db`; returns once /_stcore/health answers ok.

    The secrets file is pointed at one that does not exist, so a developer's .streamlit/secrets.toml (written by
    `make run`) never supplies the cookie key: the key is exactly `cookie_key` (None: no key at all).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MENTORSHIP_", "STREAMLIT_"))}
    env["MENTORSHIP_DB_URL"] = sqlite_url(db)
    if cookie_key is not None:
        env["MENTORSHIP_COOKIE_KEY"] = cookie_key
    env["PYTHONUNBUFFERED"] = "1"
    for attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        log = workdir / f"server-{port}.log"
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app/main.py",
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
            f"--secrets.files={workdir / 'no-secrets.toml'}",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            if _healthy(server.url):
                return server
            time.sleep(0.1)
        server.stop()
        if attempt == 2 or "already in use" not in server.log_text():
            break
    pytest.fail(f"the app did not start within {SERVER_START_SECONDS} s; its log:\n{server.log_text()}")


@pytest.fixture
def cookie_key() -> str:
    """A random 48-byte cookie key (64 URL-safe characters), new for each test."""
    return secrets.token_urlsafe(48)


@pytest.fixture
def serve(tmp_path: Path, cookie_key: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., Server]]:
    """Start the app over a database: `serve(db)` with this test's cookie key, `serve(db, cookie_key=None)`
    with none. Every server started is stopped after the test; a failed test shows the servers' logs."""
    started: list[Server] = []

    def start(db: Path, **kwargs: str | None) -> Server:
        server = start_server(db, tmp_path, kwargs.get("cookie_key", cookie_key))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        if request.node.stash.get(_FAILED, False):
            print(f"--- the log of the app at {server.url} ---\n{server.log_text()}")


@pytest.fixture
def app(serve: Callable[..., Server], demo_db: Path) -> Server:
    """The app over this test's fresh copy of the demo."""
    return serve(demo_db)


# --- the browser ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def chromium() -> Path:
    """Debian's Chromium: without it every browser test is skipped (before any app is started), or fails on CI."""
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` (or set MENTORSHIP_CHROMIUM)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Runs:
    """The runs of the app's script that one page saw finish (read from Streamlit's websocket)."""

    finished: int = 0


_RUNS: weakref.WeakKeyDictionary[Page, Runs] = weakref.WeakKeyDictionary()


def watch_runs(page: Page) -> None:
    """Count the script runs the server reports finished to this page (every websocket it opens)."""
    runs = _RUNS.setdefault(page, Runs())

    def on_frame(payload: bytes | str) -> None:
        if isinstance(payload, str):
            return
        message = ForwardMsg()
        message.ParseFromString(payload)
        if (
            message.WhichOneof("type") == "script_finished"
            and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN
        ):
            runs.finished += 1

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame) if "/_stcore/stream" in ws.url else None)


def answered(page: Page, action: Callable[[], None]) -> None:
    """Do `action` (a click that makes the app run again) and wait until that run has finished and drawn."""
    wait_until_idle(page)
    runs = _RUNS[page]
    before = runs.finished
    action()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while runs.finished <= before:
        if time.monotonic() > deadline:
            pytest.fail("the app did not answer")
        page.wait_for_timeout(50)  # lets Playwright deliver the websocket's frames
    wait_until_idle(page)


@dataclass
class Watch:
    """What the browser showed that no user should see: Streamlit exceptions, JavaScript dialogs."""

    exceptions: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


# Reports every Streamlit exception element the moment it is added, whatever page is open then.
_WATCH_EXCEPTIONS = """
new MutationObserver((mutations) => {
  for (const m of mutations) for (const node of m.addedNodes) {
    if (!(node instanceof Element)) continue;
    const hits = node.matches('[data-testid="stException"]') ? [node]
      : Array.from(node.querySelectorAll('[data-testid="stException"]'));
    for (const hit of hits) window.__reportStException(location.pathname + ': ' + hit.innerText);
  }
}).observe(document, {childList: true, subtree: true});
"""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Lets the fixtures know the test failed: they keep a picture of the browser and show the app's log.
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def watch() -> Watch:
    return Watch()


def _new_context(browser: Browser, watch: Watch) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.expose_binding("__reportStException", lambda _source, text: watch.exceptions.append(str(text)))
    context.add_init_script(_WATCH_EXCEPTIONS)
    return context


def _new_page(context: BrowserContext, watch: Watch) -> Page:
    page = context.new_page()
    watch_runs(page)

    def on_dialog(dialog: Dialog) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page


def _check_shown(pages: list[Page], watch: Watch) -> None:
    shown = sum(page.get_by_test_id("stException").count() for page in pages if not page.is_closed())
    if watch.exceptions or shown:
        pytest.fail(f"the app showed an exception: {watch.exceptions or shown}")


@pytest.fixture
def context(browser: Browser, watch: Watch) -> Iterator[BrowserContext]:
    context = _new_context(browser, watch)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, watch: Watch, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in this test's own browser context. The test fails if a Streamlit exception was shown at any
    time (a JavaScript dialog is recorded and dismissed: tests that expect none check `watch.dialogs`)."""
    page = _new_page(context, watch)
    yield page
    if request.node.stash.get(_FAILED, False) and not page.is_closed():
        FAILURES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(FAILURES / f"{request.node.name}.png"))
    _check_shown([page], watch)


@pytest.fixture
def another_page(browser: Browser, watch: Watch) -> Iterator[Callable[[], Page]]:
    """`another_page()`: a page in a browser context of its own (another person, or the same person in
    another browser), watched like `page`."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    def new() -> Page:
        contexts.append(_new_context(browser, watch))
        pages.append(_new_page(contexts[-1], watch))
        return pages[-1]

    yield new
    _check_shown(pages, watch)
    for context in contexts:
        context.close()


# --- what a user does -----------------------------------------------------------------------------------------


def sign_in_form(page: Page) -> None:
    """Wait until the sign-in form is shown."""
    expect(page.get_by_role("button", name="Login")).to_be_visible(timeout=FIRST_RUN_TIMEOUT_MS)
    expect(page.get_by_role("textbox", name="Username")).to_be_visible()


def sign_in(page: Page, user: str, password: str | None = None, *, landing: str | None = None) -> None:
    """Fill in the sign-in form and submit it. Without `password`: with the user's demo password, and wait
    until the user is signed in (and the `landing` page's title shows); with one: wait for the app's answer."""
    sign_in_form(page)
    wait_until_idle(page)
    page.get_by_role("textbox", name="Username").fill(user)
    page.get_by_role("textbox", name="Password").fill(PASSWORDS[user] if password is None else password)
    if password is not None:
        answered(page, page.get_by_role("button", name="Login").click)
        return
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    if landing:
        expect(page.get_by_role("heading", name=landing, exact=True)).to_be_visible()
    # The cookie is written by a component in the page, which then makes the app run once more: a click
    # during that run could be lost, so wait for the cookie, then for the run.
    wait_for(lambda: auth_cookies(page.context) == [COOKIE_NAME], "the sign-in cookie to be written")
    wait_until_idle(page)


def sign_out(page: Page) -> None:
    """Sign out, and wait until the cookie is deleted and the app has drawn the sign-in form again."""
    page.get_by_role("button", name="Sign out").click()
    sign_in_form(page)
    wait_for(lambda: auth_cookies(page.context) == [], "the sign-in cookie to be deleted")
    wait_until_idle(page)


def go(page: Page, server: Server, path: str = "") -> None:
    """Open one of the app's URLs, as typed into the address bar."""
    page.goto(f"{server.url}/{path}")


def wait_until_idle(page: Page) -> None:
    """Wait until Streamlit has finished a run: no running indicator, no element left from the previous run,
    no element still loading (a grey placeholder)."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    expect(page.locator('[data-stale="true"]')).to_have_count(0)
    expect(page.locator('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]')).to_have_count(0)


def table(page: Page, key: str) -> Locator:
    """The `st.dataframe` drawn with this key (or, for the app's versioned keys, with this key and a version)."""
    container = page.locator(f'[data-testid="stElementContainer"][class*="st-key-{key}"]')
    return container.get_by_test_id("stDataFrame")


def choose_row(page: Page, key: str, row: int) -> None:
    """Tick the selection box of `row` (0 = first data row) of the single-row-selection table with this key.

    The grid is drawn on a canvas, so the box is clicked by position: the header and each row are 35 px high
    and the selection column is about 30 px wide. The caller then waits for what the selection shows.
    """
    wait_until_idle(page)
    grid = table(page, key)
    expect(grid).to_have_count(1)
    expect(grid.locator("canvas").first).to_be_visible()
    grid.click(position={"x": 15, "y": 35 + 35 * row + 17})


def screenshot(page: Page, name: str, *, height: int | None = None) -> Path:
    """Save what the user sees as test-results/screenshots/<name>.png; with MENTORSHIP_UPDATE_SCREENSHOTS=1
    also as docs/screenshots/<name>.png (the README shows those). `height` takes a taller window for this
    picture (Streamlit scrolls inside the page, so a "full page" picture would show only the window)."""
    wait_until_idle(page)
    if height is not None:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        wait_until_idle(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    if height is not None:
        page.set_viewport_size(VIEWPORT)
    if os.environ.get("MENTORSHIP_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Wait until `condition()` holds (for what the DOM cannot tell, such as the browser's cookies)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def auth_cookies(context: BrowserContext) -> list[str]:
    return [c["name"] for c in context.cookies() if c["name"] == COOKIE_NAME]

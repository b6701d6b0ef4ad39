"""Browser fixtures for the end-to-end tests: Debian's Chromium driven by Playwright.

Owns launching Chromium (headless, a fresh profile per test, trusting only the
simulator's certificate by its public-key pin), signing in through devhost's dev
sign-in form, collecting script errors and CSP violations, and saving screenshots
under test-artifacts/screenshots/. It never starts the local system itself (that is
the session `stack` fixture) and never ignores certificate errors wholesale.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ADMIN_USER = "admin@contoso.onmicrosoft.com"
DESKTOP = {"width": 1280, "height": 900}
# Every browser runs in one known zone and locale, so days, times and screenshots do not depend on
# the machine the tests run on.
TIME_ZONE = "UTC"
LOCALE = "en-US"
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def spki_pin(url: str) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the certificate the server at `url` presents:
    what Chromium's --ignore-certificate-errors-spki-list takes."""
    parts = urlsplit(url)
    pem = ssl.get_server_certificate((parts.hostname or "127.0.0.1", parts.port or 443))
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


@dataclass
class BrowserProblems:
    """Uncaught script errors, CSP violations and JavaScript dialogs (alert/confirm) seen by a page."""

    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", lambda message: self.csp_violations.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text else None)

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def sim_pin(stack: Any) -> str:
    assert stack.sim_url, "the e2e tests need m365sim"
    return spki_pin(stack.sim_url)


@pytest.fixture(scope="session", autouse=True)
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def launch(playwright_driver: Any, sim_pin: str, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start Chromium with a fresh profile; returns (context, page, problems). Closed after the test."""
    contexts: list[Any] = []

    def start(viewport: dict[str, int] | None = None) -> tuple[Any, Any, BrowserProblems]:
        profile = tmp_path / f"profile-{len(contexts)}"
        context = playwright_driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            viewport=viewport or DESKTOP,
            timezone_id=TIME_ZONE,
            locale=LOCALE,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  f"--ignore-certificate-errors-spki-list={sim_pin}"],
        )
        contexts.append(context)
        context.set_default_timeout(20_000)
        page = context.pages[0] if context.pages else context.new_page()
        problems = BrowserProblems()
        problems.watch(page)
        return context, page, problems

    yield start
    for context in contexts:
        context.close()
    shutil.rmtree(tmp_path, ignore_errors=True)


def sign_in(page: Any, base_url: str, user: str = ADMIN_USER, administrator: bool = True, target: str = "/") -> None:
    """Through devhost's dev sign-in form, as a person would."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}{target}")
    page.get_by_role("link", name="Sign in (local development)").click()
    page.get_by_label("User name").fill(user)
    checkbox = page.get_by_label("administrator role")
    if administrator:
        checkbox.check()
    else:
        checkbox.uncheck()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {user}", exact=True)).to_be_visible()


@pytest.fixture
def admin_page(launch: Callable[..., Any], stack: Any) -> Iterator[tuple[Any, BrowserProblems]]:
    """A page signed in as an administrator (fresh profile); no script error may happen on it."""
    _context, page, problems = launch()
    sign_in(page, stack.base_url)
    yield page, problems
    assert problems.page_errors == [], problems.page_errors
    assert problems.csp_violations == [], problems.csp_violations
    assert problems.dialogs == [], problems.dialogs


def shoot(page: Any, name: str, full_page: bool = True) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path

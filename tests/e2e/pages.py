"""How the e2e tests find their way around the admin page: open Manage Calendars, wait for the
calendars table to settle, find a calendar's row, pick a row action. Locators only; no waiting by
sleeping and no test logic."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect


def open_manage(page: Page, base_url: str, account_id: str) -> None:
    page.goto(f"{base_url}/#/accounts/{account_id}")
    expect(page.get_by_role("heading", level=1, name=re.compile(r"^Manage Calendars: "))).to_be_visible()
    table_settled(page)


def table_settled(page: Page) -> None:
    """The calendars table has the answer to the latest filter or page request."""
    expect(page.locator(".table-area")).to_have_attribute("aria-busy", "false")


def calendar_row(page: Page, email: str) -> Any:
    return page.locator("table.calendars-table tbody tr").filter(has=page.get_by_role("rowheader", name=email))


def row_action(page: Page, email: str, action: str) -> None:
    page.get_by_role("button", name=f"More actions for {email}").click()
    page.get_by_role("menuitem", name=action).click()

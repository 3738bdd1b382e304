"""The dead-letter page in a real browser (Debian's Chromium, Playwright) on ``sagas serve``'s
app and a worker: an operator finds the events no saga knew, replays one once the saga is
registered and sees it leave the list while the worker starts the saga; a wrong token and a
message the intake still refuses say why and keep the dead letter; drop removes one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from browser_checks import CHROMIUM, CHROMIUM_ARGS, TOKEN, running_worker, serving
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from sagas import parse_definition
from sagas.engine.decide import saga_id_for
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.server import create_app
from sagas.store.dead_letters import dead_letter_of
from sagas.store.sql import SQLStore

WAIT_MS = 15_000
SHOP = """
name: shop
trigger: OrderPlaced
correlation: orderId
steps:
  - name: book
    command: {type: Book, success: Booked}
    compensation: {command: {type: CancelBooking}}
"""
GARBLED = b'{"eventId": "g-1", \xff\xfe "data": <script>alert(1)</script>'


@pytest.fixture
def site(db_path: Path) -> Iterator[tuple[str, SQLStore]]:
    """Two events no saga knew and one garbled message from a broker; then a worker that
    knows the saga, and the server."""
    database = f"sqlite:///{db_path}"
    now = datetime.now(UTC)
    first = Engine(SQLStore(database))
    try:
        for order in ("o-1", "o-2"):
            first.publish(Event.create("OrderPlaced", {"orderId": order}, at=now, event_id=order))
        first.run_until_idle()
        letter = dead_letter_of(GARBLED, "not UTF-8 at byte 20", source="nats", at=now)
        first.store.record_dead_letter(letter)
    finally:
        first.close()
    engine = Engine(SQLStore(database))
    server_store, store = SQLStore(database), SQLStore(database)
    try:
        engine.register(parse_definition(SHOP))  # the fix: the saga is known now
        app = create_app(server_store, token=TOKEN, database="sqlite:///sagas.db")
        with running_worker(engine), serving(app) as url:
            yield url, store
    finally:
        store.close()
        server_store.close()
        engine.close()


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh page; JavaScript errors fail the test (refused actions aside)."""
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

        def console(message: ConsoleMessage) -> None:
            refused = "/api/dead-letters/" in message.location.get("url", "")
            if message.type == "error" and not refused:
                errors.append(f"console: {message.text}")

        page.on("console", console)
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert not errors, errors


def test_replay_a_dead_letter_once_its_saga_is_registered_and_drop_another(
    site: tuple[str, SQLStore], page: Page
) -> None:
    url, store = site
    letters = {letter.event_id: letter.id for letter in store.find_dead_letters()}
    page.goto(url + "/")
    page.get_by_role("link", name="Dead letters").click()
    page.wait_for_url("**/dead-letters")
    expect(page.locator("h1")).to_have_text("Dead letters")
    rows = page.locator("#letters tr[data-letter-id]")
    expect(rows).to_have_count(3)
    expect(page.locator(f"tr[data-letter-id='{letters['o-1']}']")).to_contain_text(
        "no registered saga"
    )
    garbled = page.locator(f"tr[data-letter-id='{letters[None]}']")
    expect(garbled).to_contain_text("not UTF-8")
    expect(garbled).to_contain_text("nats")
    assert page.locator("script", has_text="alert").count() == 0  # shown, never run

    page.locator("input[name=source]").fill("nats")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/dead-letters?*source=nats*")
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="clear").click()
    expect(rows).to_have_count(3)

    # A wrong token: refused, nothing changes.
    page.locator("#token").fill("not-the-token")
    page.locator(f"tr[data-letter-id='{letters['o-1']}'] button[data-letter-action=replay]").click()
    result = page.locator("#letter-result")
    expect(result).to_contain_text("wrong bearer token")
    expect(result).to_have_class("error")
    assert store.count_dead_letters() == 3

    page.locator("#token").fill(TOKEN)
    page.locator(f"tr[data-letter-id='{letters['o-1']}'] button[data-letter-action=replay]").click()
    expect(result).to_contain_text(f"dead letter {letters['o-1']}: queued")
    expect(result).to_have_class("ok")
    expect(rows).to_have_count(2)
    assert page.evaluate("window.sessionStorage.getItem('sagas-token')") == TOKEN
    assert page.evaluate("window.localStorage.length") == 0
    saga_id = saga_id_for("shop", "o-1")
    page.goto(f"{url}/instances/{saga_id}")  # the worker started the saga
    expect(page.locator("#status")).to_have_text("running")
    page.go_back()

    # The garbled message is refused again and stays; then it is dropped.
    page.locator(f"tr[data-letter-id='{letters[None]}'] button[data-letter-action=replay]").click()
    expect(result).to_contain_text("refused")
    expect(result).to_have_class("error")
    expect(rows).to_have_count(2)
    page.locator(f"tr[data-letter-id='{letters[None]}'] button[data-letter-action=drop]").click()
    expect(result).to_contain_text(f"dead letter {letters[None]}: dropped")
    expect(rows).to_have_count(1)
    assert [letter.event_id for letter in store.find_dead_letters()] == ["o-2"]

"""The dashboard in a real browser: Debian's Chromium (driven by Playwright) on ``sagas serve``'s
app, served by uvicorn, over a SQLite database that a worker keeps running on the system clock.

An operator filters the list down to the failed sagas, opens a trip whose itinerary could not be
sent, retries it once the mail server is back, and watches the page turn ``completed`` by
itself; a wrong token and a refused action say why and change nothing; every definition is
drawn. The screenshots go to a temporary folder; ``make screenshots`` runs these tests with
``SAGAS_SCREENSHOTS=1`` to write them to ``docs/images/``, where the docs show them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_checks import (
    CHROMIUM,
    CHROMIUM_ARGS,
    IMAGES,
    TOKEN,
    Dashboard,
    dashboard,
)
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from sagas.engine.state import InstanceStatus, StepStatus
from sagas.store.filters import InstanceFilter

WAIT_MS = 15_000
"""How long the page may take to show what the worker did (the live refresh is every 2 s)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def site(db_path: Path) -> Iterator[Dashboard]:
    with dashboard(db_path) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (own storage); JavaScript errors on it fail the test."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        # A refused action is answered with an error status, which the console notes.
        refused = "/api/instances/" in message.location.get("url", "")
        if message.type == "error" and not refused:
            errors.append(f"console: {message.text} at {message.location}")

    page.on("console", console)
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


def statuses_shown(page: Page) -> dict[str, str]:
    """Saga id -> status of every row of the instance list."""
    rows = page.locator("#instances tr[data-saga-id]")
    return {
        row.get_attribute("data-saga-id") or "": row.locator(".badge").inner_text()
        for row in rows.all()
    }


def test_filter_to_the_failed_sagas_and_retry_one_until_it_completes(
    site: Dashboard, page: Page, tmp_path: Path
) -> None:
    store, seeded = site.store, site.seeded
    shots = IMAGES if os.environ.get("SAGAS_SCREENSHOTS") else tmp_path
    page.goto(site.url + "/")
    expect(page.locator("h1")).to_have_text("Saga instances")
    expected = {
        saga_id: status.value for status, ids in seeded.by_status.items() for saga_id in ids
    }
    expect(page.locator("#instances tr[data-saga-id]")).to_have_count(len(expected))
    assert statuses_shown(page) == expected
    for status in ("completed", "compensated", "failed"):
        count = len(seeded.by_status[InstanceStatus(status)])
        expect(page.locator(f".counts a.status-{status} b")).to_have_text(str(count))
    # Newest first: the seeding ran the instances one after the other.
    shown = page.locator("#instances tr[data-saga-id]").evaluate_all(
        "rows => rows.map(row => row.dataset.sagaId)"
    )
    assert shown == list(reversed(seeded.keys.values()))
    assert page.screenshot(path=shots / "dashboard-instances.png", full_page=True)

    page.locator("input[name=status][value=failed]").check()
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/?status=failed*")
    expect(page.locator("input[name=status][value=failed]")).to_be_checked()
    failed = store.list_instances(InstanceFilter(status=(InstanceStatus.FAILED,)), limit=100)
    expect(page.locator("#instances tr[data-saga-id]")).to_have_count(len(failed))
    assert statuses_shown(page) == {record.saga_id: "failed" for record in failed}
    assert {record.saga_id for record in failed} == set(seeded.by_status[InstanceStatus.FAILED])

    saga_id = site.seeded.keys["nomail-2002"]
    page.locator(f"#instances tr[data-saga-id='{saga_id}'] a").click()
    page.wait_for_url(f"**/instances/{saga_id}")
    expect(page.locator("#status")).to_have_text("failed")
    graph = page.locator("svg.step-graph")
    expect(graph.locator("g.step")).to_have_count(6)
    expect(graph.locator("g.step[data-step=send_itinerary]")).to_have_attribute(
        "data-status", "failed"
    )
    expect(graph.locator("g.step[data-step=charge_customer]")).to_have_attribute(
        "data-status", "succeeded"
    )
    expect(page.locator("tr[data-step=send_itinerary]")).to_contain_text("mail server down")
    assert page.screenshot(path=shots / "dashboard-instance.png", full_page=True)

    site.participants.mail_down = False  # the mail server is back
    page.locator("#token").fill(TOKEN)
    page.locator("#reason").fill("mail server is back")
    page.locator("#step").select_option("send_itinerary")
    page.locator("button[data-action=retry]").click()
    result = page.locator("#action-result")
    expect(result).to_contain_text("retry: applied (failed → running)")
    expect(result).to_have_class("ok")
    # The token is kept for this tab only (sessionStorage), never in localStorage.
    assert page.evaluate("window.sessionStorage.getItem('sagas-token')") == TOKEN
    assert page.evaluate("window.localStorage.length") == 0

    # The worker carries the retry out; the live refresh shows it without a reload.
    expect(page.locator("#status")).to_have_text("completed", timeout=WAIT_MS)
    expect(graph.locator("g.step[data-step=send_itinerary]")).to_have_attribute(
        "data-status", "succeeded", timeout=WAIT_MS
    )
    operator = page.locator("#timeline tr.operator")
    expect(operator).to_have_count(1)
    expect(operator).to_contain_text("sagas.RetryRequested")
    expect(operator).to_contain_text("by dashboard")

    state = store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPLETED
    assert state.steps["send_itinerary"].status == StepStatus.SUCCEEDED
    [action] = [e for e in store.log(saga_id) if e.event.event_type == "sagas.RetryRequested"]
    assert action.event.data == {
        "actor": "dashboard",
        "reason": "mail server is back",
        "step": "send_itinerary",
    }
    # The other failed trip was left alone.
    other = store.instance(site.seeded.keys["nomail-2003"]).state
    assert other.status == InstanceStatus.FAILED


def test_a_wrong_token_and_a_refused_action_say_why_and_change_nothing(
    site: Dashboard, page: Page
) -> None:
    store = site.store
    site.participants.mail_down = False  # a retry that got through would complete
    saga_id = site.seeded.keys["nomail-2003"]
    before = (store.instance(saga_id), store.log(saga_id), store.timers(saga_id))
    calls = list(site.participants.calls)

    page.goto(f"{site.url}/instances/{saga_id}")
    result = page.locator("#action-result")
    page.locator("button[data-action=retry]").click()
    expect(result).to_have_text("retry: missing bearer token: send 'Authorization: Bearer <token>'")
    expect(result).to_have_class("error")
    page.locator("#token").fill("not-the-token")
    page.locator("button[data-action=retry]").click()
    expect(result).to_have_text("retry: wrong bearer token")
    expect(result).to_have_class("error")
    # An answer that is not a problem detail, and no answer at all, are said too.
    page.route(
        "**/api/instances/*/retry",
        lambda route: route.fulfill(status=502, body="Bad Gateway", content_type="text/plain"),
    )
    page.locator("button[data-action=retry]").click()
    expect(result).to_have_text("retry: 502 Bad Gateway")
    page.unroute("**/api/instances/*/retry")
    page.route("**/api/instances/*/retry", lambda route: route.abort())
    page.locator("button[data-action=retry]").click()
    expect(result).to_contain_text("retry: the server cannot be reached")
    expect(result).to_have_class("error")
    page.unroute("**/api/instances/*/retry")
    expect(page.locator("#status")).to_have_text("failed")
    assert (store.instance(saga_id), store.log(saga_id), store.timers(saga_id)) == before
    assert site.participants.calls == calls, "no handler ran"

    # A refused action is recorded (an ignored entry of the log that says why) and does
    # nothing: same status, steps and data, no effect, no timer, no handler called.
    completed = site.seeded.keys["order-1001"]
    state, log = store.instance(completed).state, store.log(completed)
    page.goto(f"{site.url}/instances/{completed}")
    expect(page.locator("#status")).to_have_text("completed")
    page.locator("#token").fill(TOKEN)
    page.locator("button[data-action=compensate]").click()
    expect(result).to_contain_text("compensate: compensate refused: ")
    expect(result).to_have_class("error")
    why = result.inner_text().removeprefix("compensate: compensate refused: ").strip()
    assert why, "the refusal says why"
    expect(page.locator("#status")).to_have_text("completed")
    refusal = page.locator("#timeline tr.operator.ignored")
    expect(refusal).to_contain_text("sagas.CompensationRequested", timeout=WAIT_MS)
    expect(refusal).to_contain_text("by dashboard")

    after = store.instance(completed).state
    assert (after.status, after.steps, after.data) == (state.status, state.steps, state.data)
    [entry] = store.log(completed)[len(log) :]
    assert entry.event.event_type == "sagas.CompensationRequested"
    assert (entry.ignored, entry.effects) == (True, ())
    assert why in entry.note
    assert store.timers(completed) == []
    assert site.participants.calls == calls, "no handler ran"


def test_definitions_page_draws_every_registered_definition(site: Dashboard, page: Page) -> None:
    page.goto(site.url + "/definitions")
    registered = site.store.definitions()
    assert {d.name for d in registered} == {"order_fulfillment", "travel_booking"}
    expect(page.locator("section.definition")).to_have_count(len(registered))
    for definition in registered:
        section = page.locator(f"section.definition#{definition.name}-v{definition.version}")
        expect(section.locator("h2")).to_contain_text(definition.name)
        graph = section.locator("svg.step-graph")
        expect(graph).to_be_visible()
        steps = graph.locator("g.step")
        expect(steps).to_have_count(len(definition.steps))
        names = steps.evaluate_all("steps => steps.map(step => step.dataset.step)")
        assert sorted(names) == sorted(step.name for step in definition.steps)
        link = section.get_by_role("link", name="instances")
        # A path on the server: never a URL whose host came from the request's Host header.
        expect(link).to_have_attribute("href", f"/?saga={definition.name}")

    # A definition's link lists its instances only.
    page.locator("section.definition#travel_booking-v1").get_by_role("link").click()
    page.wait_for_url("**/?saga=travel_booking")
    trips = [site.seeded.keys[key] for key in ("trip-2001", "nomail-2002", "nomail-2003")]
    expect(page.locator("#instances tr[data-saga-id]")).to_have_count(len(trips))
    assert set(statuses_shown(page)) == set(trips)


def test_the_pages_keep_to_their_content_security_policy(site: Dashboard, page: Page) -> None:
    """Every page works under its policy (no inline script, no CDN): a violation would be an
    error in the console, which fails the test (see the ``page`` fixture)."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    saga_id = site.seeded.keys["nomail-2002"]
    for path in ("/", "/?status=failed", "/definitions", f"/instances/{saga_id}"):
        response = page.goto(site.url + path)
        assert response is not None
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        expect(page.locator("header.top")).to_be_visible()
    # The live refresh (a fetch of the page) and the legend's swatches work under it too.
    expect(page.locator(".legend svg.swatch")).not_to_have_count(0)
    with page.expect_response(lambda r: r.request.resource_type == "fetch" and r.ok):
        pass  # the page's script fetched the page again: it runs under the policy
    # Swagger UI: its files come from the server; it renders the API's operations.
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(site.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("sagas")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert requested, "the page loaded its files"
    assert all(url.startswith(site.url) for url in requested), requested
    assert violations == []


def test_the_dashboard_cannot_be_framed(site: Dashboard, browser: Browser) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        said: list[str] = []
        page.on("console", lambda message: said.append(message.text))
        with page.expect_event("console", predicate=lambda m: "frame-ancestors" in m.text):
            page.set_content(f'<iframe id="f" src="{site.url}/" width="800" height="600"></iframe>')
        page.wait_for_load_state("load")
        assert any("The request has been blocked" in text for text in said), said
        for frame in page.frames[1:]:
            assert "Saga instances" not in frame.content()
    finally:
        context.close()

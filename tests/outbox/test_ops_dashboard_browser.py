"""The ops dashboard in a real headless browser (Debian's chromium driven by Playwright).

A staff user who may change outbox events signs in, watches the backlog rise as messages are written and fall as an
in-process relay publishes them, sees a relay's heartbeat, and sends a dead event again with its
button. The page refreshes itself, so every check waits on the page's text with a deadline.
"""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from messaging.services import send_message
from outbox.heartbeats import Heartbeat
from outbox.models import OutboxEvent
from tests.conftest import ROOT
from tests.helpers import append_read_events, relay_pending_events

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-artifacts"
# The page polls every outbox.views.REFRESH_SECONDS (5 s); room for a few polls on a busy machine.
PAGE_TIMEOUT_MS = 30_000


@pytest.fixture
def page(monkeypatch) -> Page:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test installs it)")
    # Playwright's sync API runs an event loop in this thread, and Django then refuses ORM calls
    # from it; the test's own ORM calls are plain synchronous ones and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1100})
        finally:
            browser.close()
            # Connections opened while Playwright's context is active are not the ones
            # pytest-django closes; left open, they keep the test database from being dropped.
            connections.close_all()


def sign_in(page: Page, live_server, user) -> None:
    page.goto(f"{live_server.url}/ops/")
    # Anonymous: the admin login, which brings the user back to /ops/.
    expect(page).to_have_url(f"{live_server.url}/admin/login/?next=/ops/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", "x-test-password")
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/ops/")


def test_staff_watch_the_backlog_flow_and_send_a_dead_event_again(
    page, live_server, make_user, alice, bob, broker_namespace
):
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_outboxevent"))
    sign_in(page, live_server, staff)
    pending = page.locator("#backlog-pending")
    expect(pending).to_have_text("0")

    for number in range(3):
        send_message(sender=alice, receiver=bob, content=f"hello {number}")
    relay_heartbeat = Heartbeat("relay")
    relay_heartbeat.record_error(ConnectionRefusedError(111, "Connection refused"))
    relay_heartbeat.beat()

    expect(pending).to_have_text("3", timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#refresh-state")).to_have_text("live")
    expect(page.locator("#workers")).to_contain_text(relay_heartbeat.worker_id)
    expect(page.locator("#workers")).to_contain_text("alive")
    expect(page.locator("#recent-errors")).to_contain_text("ConnectionRefusedError: [Errno 111] Connection refused")

    relay_pending_events()

    expect(pending).to_have_text("0", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#chart-published rect')]"
        ".some((bar) => parseFloat(bar.getAttribute('height')) > 0)",
        timeout=PAGE_TIMEOUT_MS,
    )

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    [dead] = append_read_events(1, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_at=timezone.now(), attempts=8, last_error="NOT_ROUTED")
    dead_row = page.locator(f'#dead-events tr[data-event-id="{dead.id}"]')
    expect(dead_row).to_contain_text("NOT_ROUTED", timeout=PAGE_TIMEOUT_MS)
    expect(dead_row).to_contain_text(trace_id)
    expect(page.locator("#backlog-dead")).to_have_text("1")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ops-dashboard-dead-event.png"), full_page=True)

    dead_row.get_by_role("button", name="Send again").click()

    expect(page.locator(".messages")).to_contain_text(f"Event {dead.id} is pending again")
    expect(dead_row).to_have_count(0)
    expect(page.locator("#dead-events")).to_contain_text("No dead events.")
    expect(pending).to_have_text("1")
    assert OutboxEvent.objects.get(pk=dead.pk).state == "pending"

    page.screenshot(path=str(SCREENSHOTS / "ops-dashboard.png"), full_page=True)

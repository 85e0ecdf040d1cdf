"""Co-browsing in a real browser: the customer script on the demo site, the agent console.

One headless chromium with two isolated contexts (the customer's, the agent's) on a real local
cluster (three nodes, the router, the demo website), as `scripts/cluster` runs it. The scenarios
share one session and run in order, each with its own assertions and deadlines: consent and the
first replay; typing seen live while masked values never leave the customer's browser; the
agent's pointer and write mode; a page change; a restart of the hosting node; the customer's
End. Screenshots of both sides go to test-artifacts/ (COBROWSE_TEST_ARTIFACTS overrides).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from cobrowse.sessions.ring import ClusterRing
from tests.integration.browser import (
    Browsers,
    DemoCluster,
    join_as_agent,
    replay,
    start_cobrowsing,
    wait_for,
    widget,
)

NAME = "Grace Hopper"
CARD = "4929123456781234"  # the demo form's card field is marked data-cobrowse-mask
PASSWORD = "Tr0ub4dor-secret"  # a password field: always masked
MASKED_TEXT = "HB-2231-0942"  # text of an element with the class rr-mask
SECRETS = (CARD, PASSWORD, MASKED_TEXT)


@dataclass
class Flow:
    """What the scenarios share: the cluster, the browsers, the session."""

    cluster: DemoCluster
    browsers: Browsers
    code: str = ""
    failed: list[str] = field(default_factory=list)

    @property
    def customer(self):
        return self.browsers.customer

    @property
    def agent(self):
        return self.browsers.agent


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    cluster = DemoCluster.start(tmp_path_factory.mktemp("browser"))
    try:
        browsers = Browsers.start()
        try:
            yield Flow(cluster, browsers)
        finally:
            browsers.stop()
    finally:
        cluster.stop()


@pytest.fixture
def step(flow, request):
    """Run scenarios in order: one whose predecessor failed is skipped, not failed again."""
    if flow.failed:
        pytest.skip(f"an earlier scenario failed: {flow.failed[0]}")
    if not flow.code and request.node.name != FIRST_SCENARIO:
        pytest.skip(f"needs the session that {FIRST_SCENARIO} starts: select it too")
    before = request.session.testsfailed
    yield flow
    if request.session.testsfailed > before:  # the call's report is counted before teardown
        flow.failed.append(request.node.name)


FIRST_SCENARIO = "test_the_agent_sees_the_demo_page_once_the_customer_accepts"


def test_the_agent_sees_the_demo_page_once_the_customer_accepts(step):
    customer, agent = step.customer, step.agent
    step.code = start_cobrowsing(customer, f"{step.cluster.demo_url}/form.html")
    expect(widget(customer, ".code")).to_have_text(
        f"{step.code[:3]} {step.code[3:6]} {step.code[6:]}"
    )
    step.browsers.screenshot(customer, "customer-code")
    join_as_agent(agent, step.cluster.console_url, step.code, "Ann")
    expect(agent.locator("#state")).to_have_text("Waiting for consent")

    # The consent dialog names the agent and has the focus.
    dialog = customer.get_by_role("dialog")
    expect(dialog).to_contain_text("Ann wants to see this page")
    accept = dialog.get_by_role("button", name="Accept")
    expect(accept).to_be_focused()
    step.browsers.screenshot(customer, "customer-consent")
    # Nothing of the page was sent before consent (recording starts with an accepted agent).
    assert step.browsers.sent_events() == []
    accept.click()

    expect(agent.locator("#state")).to_have_text("Live")
    expect(replay(agent).locator("h1")).to_have_text("Get a quote")
    expect(widget(customer, ".frame")).to_be_visible()  # the customer sees they are watched
    expect(widget(customer, ".badge")).to_have_text("Shared with Ann")
    expect(agent.locator("#delay")).to_contain_text("Delay")


def test_typing_shows_up_live_and_masked_values_never_leave_the_browser(step):
    customer, agent = step.customer, step.agent
    customer.click("#name")
    customer.keyboard.type(NAME, delay=20)
    # The agent sees the text within 2 s of the last keystroke.
    expect(replay(agent).locator("#name")).to_have_value(NAME, timeout=2000)

    customer.click("#card")
    customer.keyboard.type(CARD, delay=20)
    customer.click("#password")
    customer.keyboard.type(PASSWORD, delay=20)
    customer.click("#address")  # blur: the `change` events go too
    customer.keyboard.type("1 Harbour Road", delay=20)
    expect(replay(agent).locator("#address")).to_have_value("1 Harbour Road", timeout=2000)
    expect(replay(agent).locator("#card")).to_have_value("*" * len(CARD), timeout=2000)
    step.browsers.screenshot(customer, "customer-typing")
    step.browsers.screenshot(agent, "agent-replay")

    # Not in any frame the customer's browser sent...
    sent = "\n".join(text for _, text in step.browsers.sent)
    assert NAME in sent  # the capture works
    for secret in SECRETS:
        assert secret not in sent, secret
    # ...nor in what the hosting node stored, nor in any log of the cluster...
    node = ClusterRing(step.cluster.config.nodes).owner(step.code)
    assert node is not None
    with sqlite3.connect(step.cluster.database(node)) as database:
        stored = b"\n".join(row[0] for row in database.execute("SELECT payload FROM live_log"))
    assert NAME.encode() in stored
    logs = step.cluster.logs()
    for secret in SECRETS:
        assert secret.encode() not in stored, secret
        assert secret not in logs, secret
    # ...nor anywhere in the agent's page, the replay included.
    replayed = (
        agent.frame_locator("#replay iframe")
        .locator("html")
        .evaluate(
            """html => html.outerHTML + [...html.querySelectorAll('input, textarea')]
            .map(field => field.value).join('|')"""
        )
    )
    console = agent.locator("html").evaluate("html => html.outerHTML")
    assert NAME in replayed
    for secret in SECRETS:
        assert secret not in replayed, secret
        assert secret not in console, secret


def field_center(agent, selector: str) -> tuple[float, float]:
    box = replay(agent).locator(selector).bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_the_agents_pointer_and_write_mode_granted_then_revoked(step):
    customer, agent = step.customer, step.agent
    # The pointer: the agent's mouse over the replay shows on the customer's page, in place.
    x, y = field_center(agent, "#email")
    agent.mouse.move(x - 40, y)
    agent.mouse.move(x, y, steps=4)
    pointer = widget(customer, ".pointer")
    expect(pointer).to_be_visible()
    email = customer.locator("#email").bounding_box()
    assert email is not None

    def pointer_on_email() -> bool:
        box = pointer.bounding_box()
        return bool(
            box
            and abs(box["x"] - (email["x"] + email["width"] / 2)) < 12
            and abs(box["y"] - (email["y"] + email["height"] / 2)) < 12
        )

    wait_for(customer, pointer_on_email, 5, "the agent's pointer over the email field")
    expect(widget(customer, ".pointer span")).to_have_text("Ann")
    agent.mouse.down()
    agent.mouse.up()
    expect(widget(customer, ".ripple")).to_have_count(1)  # the click highlight
    step.browsers.screenshot(customer, "customer-pointer")

    # Write mode: requested, granted by the customer, used.
    agent.get_by_role("button", name="Request control").click()
    dialog = customer.get_by_role("dialog")
    expect(dialog).to_contain_text("Ann asks to fill in fields for you")
    step.browsers.screenshot(customer, "customer-control-request")
    dialog.get_by_role("button", name="Allow").click()
    expect(agent.locator("#message")).to_contain_text("You have control")
    agent.mouse.click(x, y)
    expect(agent.locator("#editor")).to_be_visible()
    agent.keyboard.type("grace@example.com", delay=15)
    agent.keyboard.press("Enter")
    expect(customer.locator("#email")).to_have_value("grace@example.com", timeout=3000)
    expect(replay(agent).locator("#email")).to_have_value("grace@example.com", timeout=3000)
    agent.mouse.click(*field_center(agent, "#plan"))  # a select: the console offers its options
    agent.select_option("#editor-select", "buildings")
    expect(customer.locator("#plan")).to_have_value("buildings", timeout=3000)
    expect(replay(agent).locator("#plan")).to_have_value("buildings", timeout=3000)
    step.browsers.screenshot(agent, "agent-write-mode")
    # A protected field is out of reach even in write mode.
    agent.mouse.click(*field_center(agent, "#password"))
    expect(agent.locator("#message")).to_contain_text("protected")
    expect(agent.locator("#editor")).to_be_hidden()

    # Revoked: the customer's Stop control; the console stops typing, the node refuses input.
    widget(customer, "button:has-text('Stop control')").click()
    expect(agent.locator("#message")).to_contain_text("took control back")
    expect(agent.get_by_role("button", name="Request control")).to_be_enabled()
    agent.mouse.click(x, y)
    expect(agent.locator("#editor")).to_be_hidden()
    stored = json.loads(agent.evaluate("sessionStorage.getItem('cobrowse-agent')"))
    url = (
        stored["base"].replace("http", "ws", 1) + f"/rest/live/users/{stored['userToken']}/channel"
    )
    origin = step.cluster.console_url.split("/cobrowse", 1)[0]
    with connect(url, origin=origin, open_timeout=10) as raw:  # type: ignore[arg-type]
        raw.send(json.dumps({"type": "hello", "lastSeq": 10**9}))
        assert json.loads(raw.recv(timeout=10))["type"] == "welcome"
        raw.send(json.dumps({"type": "input", "id": 1, "value": "refused"}))
        while True:
            frame = json.loads(raw.recv(timeout=10))
            if frame["type"] == "error":
                break
        assert frame["request"] == "input"
    expect(customer.locator("#email")).to_have_value("grace@example.com")


def test_the_agent_follows_the_customer_to_another_page(step):
    customer, agent = step.customer, step.agent
    customer.get_by_role("button", name="See plans").click()
    expect(customer.locator("h1")).to_have_text("Our plans")
    expect(replay(agent).locator("h1")).to_have_text("Our plans", timeout=5000)
    expect(agent.locator("#page")).to_have_text(f"{step.cluster.demo_url}/plans.html")
    expect(widget(customer, ".frame")).to_be_visible()  # still shared, on the new page
    expect(agent.locator("#state")).to_have_text("Live")
    step.browsers.screenshot(agent, "agent-after-navigation")
    # The same session all along: one Create, and hellos that resume (lastSeq > 0).
    hellos = [frame for _, frame in step.browsers.frames("hello")]
    assert len(hellos) == 2
    assert hellos[1]["lastSeq"] > 0
    customer.get_by_role("link", name="go back to the form").click()
    expect(replay(agent).locator("h1")).to_have_text("Get a quote", timeout=5000)


def test_both_sides_resume_after_the_hosting_node_restarts(step):
    customer, agent = step.customer, step.agent
    node = ClusterRing(step.cluster.config.nodes).owner(step.code)
    assert node is not None
    customer_hellos = len(step.browsers.frames("hello"))
    agent_hellos = len(step.browsers.frames("hello", agent=True))
    step.cluster.restart(node)  # SIGTERM (channels close with 1001), then start it again

    # Both reconnect by themselves, resuming where they were, and the view goes on.
    def resumed(agent_side: bool, before: int) -> bool:
        hellos = step.browsers.frames("hello", agent=agent_side)[before:]
        return any(frame["lastSeq"] > 0 for _, frame in hellos)

    wait_for(customer, lambda: resumed(False, customer_hellos), 30, "the customer resumes")
    wait_for(customer, lambda: resumed(True, agent_hellos), 30, "the agent resumes")
    expect(agent.locator("#state")).to_have_text("Live", timeout=30_000)
    expect(widget(customer, ".status").first).to_have_text("Ann can see this page.")
    customer.click("#address")
    customer.keyboard.press("Control+A")
    customer.keyboard.type("2 Quay Street", delay=20)
    expect(replay(agent).locator("#address")).to_have_value("2 Quay Street", timeout=5000)
    step.browsers.screenshot(agent, "agent-after-restart")


def test_the_customers_end_stops_the_agents_view_with_a_clear_message(step):
    customer, agent = step.customer, step.agent
    widget(customer, "button:has-text('End co-browsing')").click()
    expect(agent.locator("#message")).to_have_text("The customer ended co-browsing.")
    expect(agent.locator("#state")).to_have_text("Ended")
    expect(agent.locator("#replay iframe")).to_have_count(0)
    expect(agent.locator("#placeholder")).to_be_visible()
    expect(customer.get_by_role("button", name="Co-browse")).to_be_visible()
    expect(widget(customer, ".frame")).to_be_hidden()
    step.browsers.screenshot(agent, "agent-ended")
    step.browsers.screenshot(customer, "customer-ended")
    assert step.browsers.errors == []


def test_the_script_loads_rrweb_on_a_page_with_an_amd_loader(flow):
    """rrweb's UMD bundle registers with an AMD loader instead of setting its global: the
    customer script still gets `rrwebRecord`, and the page's loader is left as it was."""
    context = flow.browsers.browser.new_context()
    try:
        context.add_init_script(
            "window.__amd = []; window.define = function (name) { window.__amd.push(name); };"
            " window.define.amd = { jQuery: true };"
        )
        page = context.new_page()
        page.set_default_timeout(10_000)
        start_cobrowsing(page, f"{flow.cluster.demo_url}/")
        page.wait_for_function("() => window.rrwebRecord && window.rrwebRecord.record")
        assert page.evaluate("window.__amd") == []
        assert page.evaluate("window.define.amd") == {"jQuery": True}
        widget(page, "button:has-text('End co-browsing')").click()
        expect(page.get_by_role("button", name="Co-browse")).to_be_visible()
    finally:
        context.close()


def test_the_console_explains_every_refusal(flow):
    """No such code (404), declined, already an agent (409): each with a clear message."""
    browser = flow.browsers.browser
    contexts = [browser.new_context(viewport={"width": 1000, "height": 700}) for _ in range(4)]
    try:
        customer, agent, other, late = (context.new_page() for context in contexts)
        for page in (customer, agent, other, late):
            page.set_default_timeout(10_000)
        join_as_agent(agent, flow.cluster.console_url, "000000000", "Ann")
        expect(agent.locator("#message")).to_have_text(
            "No live session has this code: check it with the customer."
        )
        agent.fill("#code", "12345")  # the form's own validation stops it
        assert not agent.locator("#code").evaluate("input => input.checkValidity()")

        code = start_cobrowsing(customer, f"{flow.cluster.demo_url}/")
        join_as_agent(agent, flow.cluster.console_url, code, "Ann")
        customer.get_by_role("dialog").get_by_role("button", name="Decline").click()
        expect(agent.locator("#message")).to_have_text(
            "The customer declined your request to join."
        )
        expect(agent.locator("#state")).to_have_text("Ended")

        join_as_agent(other, flow.cluster.console_url, code, "Bob")
        customer.get_by_role("dialog").get_by_role("button", name="Accept").click()
        expect(other.locator("#state")).to_have_text("Live")
        join_as_agent(late, flow.cluster.console_url, code, "Cy")
        expect(late.locator("#message")).to_have_text("This session already has an agent.")
        flow.browsers.screenshot(late, "agent-refused")
        widget(customer, "button:has-text('End co-browsing')").click()
        expect(other.locator("#message")).to_have_text("The customer ended co-browsing.")
    finally:
        for context in contexts:
            context.close()

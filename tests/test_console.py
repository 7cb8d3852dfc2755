"""The web console at /, driven in headless Chromium (Playwright) as a new user would,
against the real server on loopback; and the HTTP side of serving it (no token needed
for the page, the Host/Origin guard, the package data).

The browser tests need Debian's Chromium at /usr/bin/chromium (`.ci/run` installs it);
without it they are skipped, except under CI, where a missing browser is a failure.
Screenshots go to test-output/console/ (gitignored).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.config import Settings
from persona_mcp.transports.console import ASSETS
from persona_mcp.transports.security import origin_allowed
from tests.conftest import RunningServer, make_settings, serve

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
WAIT_MS = 20_000  # the longest any one expectation polls for (a loaded 2-core machine)

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="browser tests need Debian's Chromium at /usr/bin/chromium "
    "(apt-get install -y chromium; .ci/run installs it)",
)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


class Console:
    """One browser tab on one server, with the server's own client beside it."""

    def __init__(self, page: Any, server: RunningServer, client: PersonaClient) -> None:
        self.page = page
        self.server = server
        self.client = client
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def open(self, panel: str = "personas") -> None:
        await self.page.goto(f"{self.server.http_url}/#{panel}")
        await self.expect(self.page.locator("#connection")).to_have_text("Connected")

    async def choose(self, persona: str) -> None:
        await self.page.locator("#persona-select").select_option(label=persona)

    async def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    @staticmethod
    def expect(target: Any) -> Any:
        from playwright.async_api import expect

        return expect(target)


async def open_console(browser: Any, server: RunningServer, **context: Any) -> Any:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    return ctx, await ctx.new_page()


@pytest.fixture
async def console(browser: Any, settings: Settings) -> AsyncIterator[Console]:
    async with serve(settings) as server, server.client() as client:
        ctx, page = await open_console(browser, server)
        tab = Console(page, server, client)
        try:
            yield tab
        finally:
            await ctx.close()
        assert tab.errors == [], "uncaught errors in the page"


async def server_message(client: PersonaClient, method: str, params: dict[str, Any]) -> str:
    with pytest.raises(RpcError) as caught:
        await client.call(method, params)
    return caught.value.message


# -- the page, as a new user sees it -------------------------------------------------------


@needs_browser
async def test_the_page_loads_and_lists_aria_and_kira(console: Console) -> None:
    await console.open()
    cards = console.page.locator(".persona-card h3")
    await console.expect(cards).to_have_count(2)
    await console.expect(cards.nth(0)).to_contain_text("Aria")
    await console.expect(cards.nth(1)).to_contain_text("Kira")
    await console.expect(console.page.locator("#persona-select option")).to_have_text(
        ["Aria", "Kira"]
    )
    await console.expect(console.page.locator(".persona-card meter").first).to_be_visible()
    await console.shot("personas-desktop")


@needs_browser
async def test_the_page_fits_a_phone_screen(console: Console) -> None:
    await console.page.set_viewport_size({"width": 390, "height": 844})
    await console.open()
    await console.expect(console.page.locator(".persona-card")).to_have_count(2)
    overflow = await console.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await console.shot("personas-phone")
    await console.open("memories")
    await console.expect(console.page.locator("#memories-title")).to_be_visible()
    overflow = await console.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await console.shot("memories-phone")


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => !el.closest('[hidden]'))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map((el) => el.outerHTML)"""


@needs_browser
async def test_every_control_of_every_panel_has_a_label(console: Console) -> None:
    await console.open()
    for panel in ("personas", "chat", "memories", "prune", "relationships", "simulations"):
        await console.page.goto(f"{console.server.http_url}/#{panel}")
        await console.expect(console.page.locator("#connection")).to_have_text("Connected")
        await console.expect(
            console.page.locator("#panels > section:not([hidden]) h2")
        ).to_be_visible()
        assert await console.page.evaluate(UNLABELLED) == [], panel
    await console.open("personas")
    await console.page.get_by_role("button", name="New persona").click()
    await console.page.get_by_role("button", name="Add topic").click()
    assert await console.page.evaluate(UNLABELLED) == []


@needs_browser
async def test_the_panels_are_reached_by_keyboard_and_focus_follows(console: Console) -> None:
    page = console.page
    await console.open()
    for _ in range(30):  # bounded: the nav comes within the first few stops
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == "Memories":
            break
    await page.keyboard.press("Enter")
    await console.expect(page.locator("#memories-title")).to_be_focused()
    await console.expect(page.locator('nav a[aria-current="page"]')).to_have_text("Memories")


@needs_browser
async def test_a_chat_with_kira_streams_its_reply_and_shows_the_memories_it_used(
    console: Console,
) -> None:
    await console.client.call(
        "memory.store",
        {"persona_id": "Kira", "content": "My sister Mara lives in Lisbon and paints ships."},
    )
    page = console.page
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
    await console.open("chat")
    await console.choose("Kira")
    await console.expect(page.locator("#chat-title")).to_have_text("Chat with Kira")
    # Record the reply's length each time the page changes it while it streams in.
    await page.evaluate(
        """() => {
            window.streamed = [];
            new MutationObserver(() => {
                const text = document.querySelector('.chat-log .text.streaming');
                if (text) window.streamed.push(text.textContent.length);
            }).observe(document.querySelector('.chat-log'),
                       {subtree: true, childList: true, characterData: true});
        }"""
    )
    await page.get_by_label("Message", exact=True).fill("Where does my sister Mara live?")
    await page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator(".chat-log .bubble.persona .text").last
    await console.expect(reply).not_to_have_class("text streaming")
    await console.expect(reply).to_contain_text("Lisbon")
    used = page.locator(".chat-log .used").last
    await console.expect(used.locator("h4")).to_have_text("Memories used (1)")
    await console.expect(used.locator(".used-memory .content")).to_have_text(
        "My sister Mara lives in Lisbon and paints ships."
    )
    await console.expect(used.locator(".why .part-name").first).to_have_text("lexical")
    await console.expect(used.locator(".terms")).to_contain_text("mara")
    lengths = await page.evaluate("window.streamed")
    assert len({n for n in lengths if n > 0}) >= 2, "the reply arrived in one piece"
    deltas = [json.loads(f) for f in frames if "persona.chat.delta" in f]
    assert len(deltas) >= 2
    assert await reply.text_content() == "".join(d["params"]["delta"] for d in deltas)
    await console.shot("chat")


@needs_browser
async def test_a_memory_search_finds_a_stored_memory_and_draws_its_importance_over_time(
    console: Console,
) -> None:
    await console.client.call(
        "memory.store",
        {
            "persona_id": "Aria",
            "content": "The user plays the cello on Sundays.",
            "importance": 0.7,
        },
    )
    page = console.page
    await console.open("memories")
    await console.choose("Aria")
    await page.get_by_label("Words or meaning").fill("cello")
    await page.get_by_role("button", name="Search", exact=True).click()
    found = page.locator(".search-results tbody tr")
    await console.expect(found).to_have_count(1)
    await console.expect(found.first).to_contain_text("The user plays the cello on Sundays.")
    await found.first.get_by_role("button", name="Open").click()
    chart = page.locator(".detail svg.decay-chart")
    await console.expect(chart).to_be_visible()
    await console.expect(page.locator(".detail figcaption")).to_contain_text("Importance 0.700 now")
    # The default decay is exponential: the curve starts at 0.7 and falls.
    curve = await chart.locator("path.curve").get_attribute("d")
    assert curve is not None
    ys = [float(p.split(",")[1]) for p in curve.replace("M", "").split(" L")]
    assert len(ys) == 61 and ys[-1] > ys[0]  # SVG y grows downwards
    await console.shot("memory-detail")


@needs_browser
@pytest.mark.parametrize("mode", ["linear", "exponential", "logarithmic", "step", "access_based"])
async def test_the_chart_ages_a_memory_exactly_as_the_servers_decay_pass(
    console: Console, mode: str
) -> None:
    client = console.client
    config = await client.call("memory.set_decay_config", {"mode": mode, "rate": 0.01})
    stored = await client.call(
        "memory.store",
        {"persona_id": "Kira", "content": "Tides follow the moon.", "importance": 0.8},
    )
    await client.call("memory.search", {"persona_id": "Kira", "query": "tides moon"})  # 1 access
    before = (await client.call("memory.get", {"memory_id": stored["memory"]["id"]}))["memory"]
    await console.open("memories")
    hours = 50.0
    projected = await console.page.evaluate(
        """async ([memory, config, hours]) => {
            const decay = await import('/console/js/decay.js');
            return decay.afterPass(memory.importance, hours, config, memory.access_count);
        }""",
        [before, config, hours],
    )
    await client.call("memory.decay_force", {"persona_id": "Kira", "hours": hours})
    after = (await client.call("memory.get", {"memory_id": before["id"]}))["memory"]
    assert before["access_count"] == 1
    assert after["importance"] < before["importance"]
    assert projected == pytest.approx(after["importance"], abs=1e-6)


@needs_browser
async def test_the_logarithmic_curve_loses_a_step_at_each_pass_of_the_job(
    console: Console,
) -> None:
    client = console.client
    interval_hours = 6.0
    config = await client.call(
        "memory.set_decay_config",
        {"mode": "logarithmic", "rate": 0.02, "interval_seconds": interval_hours * 3600},
    )
    stored = await client.call(
        "memory.store", {"persona_id": "Aria", "content": "A slow tide.", "importance": 0.7}
    )
    await console.open("memories")
    projected = await console.page.evaluate(
        """async ([memory, config, hours]) => {
            const decay = await import('/console/js/decay.js');
            return decay.projectedImportance(memory, config, hours);
        }""",
        [stored["memory"], config, 2.5 * interval_hours],
    )
    for _ in range(2):  # the job's two passes within 2.5 intervals
        await client.call("memory.decay_force", {"persona_id": "Aria", "hours": interval_hours})
    after = (await client.call("memory.get", {"memory_id": stored["memory"]["id"]}))["memory"]
    assert projected == pytest.approx(after["importance"], abs=1e-6)


@needs_browser
async def test_a_dry_run_prune_lists_candidates_and_a_prune_can_be_restored(
    console: Console,
) -> None:
    client = console.client
    weak = [{"content": f"Passing remark number {i} about the weather.", "importance": 0.2}
            for i in range(15)]  # fmt: skip
    await client.call("memory.store_batch", {"persona_id": "Aria", "memories": weak})
    page = console.page
    await console.open("prune")
    await console.choose("Aria")
    await page.get_by_role("button", name="Preview (dry run)").click()
    await console.expect(page.locator(".prune-summary")).to_contain_text(
        "A prune would remove 5 of 15 memories of Aria"
    )
    rows = page.locator(".prune-candidates tbody tr")  # at least 10 are always kept
    await console.expect(rows).to_have_count(5)
    await console.expect(rows.first.locator(".reason")).to_contain_text("is below 0.5")
    assert (await client.call("memory.stats", {"persona_id": "Aria"}))["total"] == 15
    await console.shot("prune-preview")
    await page.get_by_role("button", name="Prune 5").click()
    await page.get_by_role("button", name="Yes, prune 5").click()
    await console.expect(page.locator(".prune-outcome")).to_contain_text(
        "Pruned 5 of 15; 10 remain."
    )
    assert (await client.call("memory.stats", {"persona_id": "Aria"}))["total"] == 10
    await page.locator(".prune-outcome").get_by_role("button", name="Restore this run").click()
    await console.expect(page.locator(".prune-outcome")).to_contain_text("Restored 5 memories")
    assert (await client.call("memory.stats", {"persona_id": "Aria"}))["total"] == 15
    await console.shot("prune-restored")


@needs_browser
async def test_pin_and_forget_are_kept_after_a_reload(console: Console) -> None:
    client = console.client
    keep = await client.call(
        "memory.store", {"persona_id": "Kira", "content": "The user was born in Tromsø."}
    )
    drop = await client.call(
        "memory.store", {"persona_id": "Kira", "content": "The user once owned a red kite."}
    )
    keep_id, drop_id = keep["memory"]["id"], drop["memory"]["id"]
    page = console.page
    await console.open("memories")
    await console.choose("Kira")
    table = page.locator(".memory-table")
    await table.locator(f'tr[data-memory-id="{keep_id}"]').get_by_role("button").click()
    await page.locator(".detail").get_by_role("button", name="Pin", exact=True).click()
    await console.expect(page.locator(".detail h3 .badge")).to_have_text("pinned")
    await console.expect(page.locator(".detail figcaption")).to_contain_text("never decays")
    await table.locator(f'tr[data-memory-id="{drop_id}"]').get_by_role("button").click()
    await console.expect(page.locator(".detail blockquote")).to_have_text(
        "The user once owned a red kite."
    )
    await page.locator(".detail").get_by_role("button", name="Forget").click()
    await page.get_by_role("button", name="Yes, forget").click()
    await console.expect(table.locator(f'tr[data-memory-id="{drop_id}"]')).to_have_count(0)

    await page.reload()
    await console.expect(page.locator("#connection")).to_have_text("Connected")
    row = page.locator(f'.memory-table tr[data-memory-id="{keep_id}"]')
    await console.expect(row.locator(".badge")).to_have_text("pinned")
    await console.expect(
        page.locator(f'.memory-table tr[data-memory-id="{drop_id}"]')
    ).to_have_count(0)
    assert (await client.call("memory.get", {"memory_id": keep_id}))["memory"]["pinned"] is True
    assert await server_message(client, "memory.get", {"memory_id": drop_id})
    await console.shot("memories-after-reload")


@needs_browser
async def test_an_edit_keeps_the_old_text_in_the_history(console: Console) -> None:
    stored = await console.client.call(
        "memory.store", {"persona_id": "Aria", "content": "The user's cat is called Miso."}
    )
    page = console.page
    await console.open("memories")
    await console.choose("Aria")
    row = page.locator(f'.memory-table tr[data-memory-id="{stored["memory"]["id"]}"]')
    await row.get_by_role("button", name="Open").click()
    await page.locator(".detail").get_by_label("Content").fill("The user's cat is called Mochi.")
    await page.get_by_role("button", name="Save edit").click()
    await console.expect(page.locator(".detail blockquote")).to_have_text(
        "The user's cat is called Mochi."
    )
    await console.expect(page.locator(".detail .versions li")).to_contain_text(
        "The user's cat is called Miso."
    )


@needs_browser
async def test_a_failing_call_shows_the_servers_message(console: Console) -> None:
    page = console.page
    await console.open()
    expected = await server_message(console.client, "persona.create", {"name": "Kira"})
    await page.get_by_role("button", name="New persona").click()
    await page.get_by_label("Name").fill("Kira")
    await page.get_by_role("button", name="Create persona").click()
    error = page.locator(".persona-form .error")
    await console.expect(error).to_contain_text(expected)
    await console.expect(error).to_contain_text("persona.create failed")
    await console.expect(error).to_contain_text("(error -32002)")
    await console.shot("error-conflict")


@needs_browser
async def test_a_dropped_character_card_goes_to_persona_import_card(console: Console) -> None:
    """The page sends the card to persona.import_card and shows what the server answers:
    the imported persona where the method exists, else the server's own error."""
    card = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": "Seren", "description": "A lighthouse keeper.",
                     "personality": "calm, watchful"}}  # fmt: skip
    probe = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Probe"}}
    try:
        await console.client.call("persona.import_card", {"card": probe})
        expected = None
    except RpcError as exc:
        expected = exc.message
    page = console.page
    await console.open()
    await page.get_by_label("Import a character card").set_input_files(
        {"name": "seren.json", "mimeType": "application/json", "buffer": json.dumps(card).encode()}
    )
    if expected is None:
        await console.expect(page.locator(".persona-card h3", has_text="Seren")).to_have_count(1)
    else:
        await console.expect(page.locator(".dropzone .error")).to_contain_text(expected)
        await console.expect(page.locator(".dropzone .error")).to_contain_text(
            "persona.import_card failed"
        )
    await console.shot("card-import")


@needs_browser
async def test_a_png_card_is_sent_as_one_base64_string(console: Console) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/cRPS2gAAAABJRU5ErkJggg=="
    )
    page = console.page
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(f)))
    await console.open()
    await page.get_by_label("Import a character card").set_input_files(
        {"name": "card.png", "mimeType": "image/png", "buffer": png}
    )
    answered = page.locator(".dropzone .error").or_(
        page.locator(".dropzone [role=status]", has_text="Imported")
    )
    await console.expect(answered).to_be_visible()
    calls = [json.loads(f) for f in sent if "persona.import_card" in f]
    assert calls and calls[0]["params"] == {"card": base64.b64encode(png).decode()}


@needs_browser
async def test_a_persona_is_created_and_edited_from_the_page(console: Console) -> None:
    page = console.page
    await console.open()
    await page.get_by_role("button", name="New persona").click()
    form = page.locator(".persona-form")
    await form.get_by_label("Name").fill("Juno")
    await form.get_by_label("Description").fill("A gardener who talks to bees.")
    await form.get_by_label("Personality traits").fill("patient, warm")
    await form.get_by_label("Backstory").fill("Grew up on a hillside farm.")
    await form.get_by_role("button", name="Add topic").click()
    await form.get_by_label("Topic 1", exact=True).fill("gardening")
    await form.get_by_label("Interest in topic 1 (0 to 1)").fill("0.9")
    await form.get_by_role("button", name="Create persona").click()
    card = page.locator(".persona-card", has=page.locator("h3", has_text="Juno"))
    await console.expect(card).to_contain_text("gardening 0.90")
    await card.get_by_role("button", name="Edit").click()
    await form.get_by_label("Backstory").fill("Grew up on a hillside farm by the sea.")
    await form.get_by_role("button", name="Save changes").click()
    await console.expect(form).to_have_count(0)
    status = await console.client.call("persona.status", {"persona_id": "Juno"})
    persona = status["persona"]
    assert persona["personality_traits"] == ["patient", "warm"]
    assert persona["topic_preferences"] == {"gardening": 0.9}
    assert persona["backstory"] == "Grew up on a hillside farm by the sea."


class HeldAnswers:
    """The page's WebSocket, routed through Playwright: the server's answers to the
    page's calls of one method are held back until `release()`; all else passes."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._ids: set[Any] = set()
        self._held: list[str | bytes] = []
        self._page_side: Any = None
        self.holding = True

    def route(self, ws: Any) -> None:
        server = ws.connect_to_server()
        self._page_side = ws

        def from_page(message: str | bytes) -> None:
            call = json.loads(message)
            if isinstance(call, dict) and call.get("method") == self.method:
                self._ids.add(call.get("id"))
            server.send(message)

        def from_server(message: str | bytes) -> None:
            answer = json.loads(message)
            if self.holding and isinstance(answer, dict) and answer.get("id") in self._ids:
                self._held.append(message)
            else:
                ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    def release(self) -> None:
        self.holding = False
        for message in self._held:
            self._page_side.send(message)
        self._held.clear()


@needs_browser
async def test_a_create_answered_late_leaves_the_edit_form_opened_meanwhile_open(
    console: Console,
) -> None:
    # The create's persona.state event refreshes the list before its answer arrives: the
    # new persona's Edit can be used first, and the late answer must not close that form.
    page = console.page
    answers = HeldAnswers("persona.create")
    await page.route_web_socket("**/mcp", answers.route)
    await console.open()
    await page.get_by_role("button", name="New persona").click()
    form = page.locator(".persona-form")
    await form.get_by_label("Name").fill("Juno")
    await form.get_by_role("button", name="Create persona").click()
    card = page.locator(".persona-card", has=page.locator("h3", has_text="Juno"))
    await card.get_by_role("button", name="Edit").click()
    await console.expect(form.locator("h3")).to_have_text("Edit Juno")
    answers.release()
    await console.expect(page.locator("#announcer")).to_have_text("Created Juno.")
    await console.expect(form.locator("h3")).to_have_text("Edit Juno")
    await form.get_by_label("Backstory").fill("Keeps bees on a hillside.")
    await form.get_by_role("button", name="Save changes").click()
    await console.expect(page.locator("#announcer")).to_have_text("Saved Juno.")
    await console.expect(form).to_have_count(0)
    status = await console.client.call("persona.status", {"persona_id": "Juno"})
    assert status["persona"]["backstory"] == "Keeps bees on a hillside."


@needs_browser
async def test_a_chatroom_plays_live_and_the_graph_shows_who_feels_what(
    console: Console,
) -> None:
    page = console.page
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
    await console.open("simulations")
    await page.get_by_label("Topic").fill("old sea songs")
    await page.get_by_label("Most turns").fill("4")
    await page.get_by_label("Seed").fill("7")
    await page.get_by_role("button", name="Start").click()
    viewer = page.locator(".viewer")
    await console.expect(viewer.locator("[role=status]")).to_contain_text("completed")
    (run,) = (await console.client.call("simulation.list"))["simulations"]
    assert run["turns"] >= 1
    await console.expect(viewer.locator(".sim-turn")).to_have_count(run["turns"])
    assert any("simulation.turn" in f for f in frames), "no live turn reached the page"
    await console.shot("chatroom")
    await console.client.call(
        "persona.chat", {"persona_id": "Aria", "message": "I love sea songs!"}
    )
    await console.open("relationships")
    graph = page.locator("svg.relationship-graph")
    await console.expect(graph.locator(".node")).to_have_count(3)
    # Aria's and Kira's views of each other from the room, and Aria's view of you.
    await console.expect(graph.locator("path.edge")).to_have_count(3)
    await console.expect(page.locator(".relationship-table tbody tr")).to_have_count(3)
    await console.expect(graph.locator('path.edge[data-to="user"]')).to_have_count(1)
    await console.shot("relationships")


@needs_browser
async def test_the_system_panel_shows_the_model_the_embedder_and_the_storage(
    console: Console,
) -> None:
    page = console.page
    await console.open("system")
    panel = page.locator("#panels section:not([hidden])")
    await console.expect(panel).to_contain_text("Embedder")
    await console.expect(panel).to_contain_text("offline")
    await console.expect(panel).to_contain_text("Database")
    await console.expect(panel).to_contain_text("Decay")
    await console.shot("system")


@needs_browser
async def test_the_console_asks_for_a_token_when_the_server_requires_one(
    browser: Any, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", auth_mode="required")
    async with serve(settings) as server:
        _, secret = await server.app.tokens.create("alice")
        ctx, page = await open_console(browser, server)
        try:
            await page.goto(server.http_url + "/")
            login = page.locator("form.login")
            await Console.expect(login).to_be_visible()
            await Console.expect(login.locator(".error")).to_have_text(
                "A bearer token is required (AUTH_MODE=required)"
            )
            await Console.expect(page.locator("#connection")).to_have_text("Sign in needed")
            await Console.expect(page.locator("nav")).to_be_hidden()
            await page.get_by_label("Token").fill("pmcp_not-a-real-token")
            await page.get_by_role("button", name="Sign in").click()
            await Console.expect(page.locator("form.login .error")).to_have_text(
                "Invalid or revoked token"
            )
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "login.png"), full_page=True)
            await page.get_by_label("Token").fill(secret)
            await page.get_by_role("button", name="Sign in").click()
            await Console.expect(page.locator("#connection")).to_have_text("Connected")
            await Console.expect(page.locator(".persona-card")).to_have_count(2)
        finally:
            await ctx.close()


# -- serving the page ------------------------------------------------------------------


async def test_the_page_and_its_assets_load_without_a_token_but_the_doors_do_not(
    tmp_path: Path,
) -> None:
    async with serve(make_settings(tmp_path / "data", auth_mode="required")) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            page = await http.get("/")
            script = await http.get("/console/js/rpc.js")
            mcp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            missing = await http.get("/console/js/nothing-here.js")
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url, subprotocols=["persona-mcp"]):  # type: ignore[list-item]
                pass
    assert page.status_code == 200 and "<title>persona-mcp console</title>" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert mcp.status_code == 401
    assert missing.status_code == 404
    assert refused.value.response.status_code == 401


async def raw_status(port: int, path: str) -> int:
    """The status of a GET sent exactly as written (httpx would resolve the dots)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 15)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


async def test_a_path_that_climbs_out_of_the_console_reaches_no_door(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path / "data", auth_mode="required")) as server:
        for path in ("/console/../mcp", "/console/%2e%2e/mcp", "/console/../metrics"):
            assert await raw_status(server.port, path) == 404, path


async def test_a_foreign_host_cannot_load_the_console(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        rebound = await http.get("/", headers={"Host": "127.evil.example"})
        asset = await http.get("/console/js/main.js", headers={"Host": "127.evil.example"})
    assert rebound.status_code == 421
    assert asset.status_code == 421


def test_a_page_of_the_servers_own_origin_may_open_the_door_on_a_remote_bind(
    tmp_path: Path,
) -> None:
    remote = make_settings(tmp_path, server_host="0.0.0.0", auth_mode="required")
    assert origin_allowed("http://persona.example:8000", remote, "persona.example:8000")
    assert origin_allowed("https://persona.example", remote, "persona.example")
    assert origin_allowed("https://persona.example", remote, "persona.example:443")
    assert not origin_allowed("http://persona.example:9000", remote, "persona.example:8000")
    assert not origin_allowed("http://evil.example:8000", remote, "persona.example:8000")
    assert not origin_allowed("http://persona.example:8000", remote, None)
    local = make_settings(tmp_path)
    assert not origin_allowed("http://persona.example:8000", local, "persona.example:8000")


def test_every_console_file_ships_in_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["persona_mcp"]
    package = ASSETS.parent
    files = {p for p in ASSETS.rglob("*") if p.is_file()}
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert ASSETS / "index.html" in files
    assert sorted(str(p.relative_to(package)) for p in files - shipped) == []

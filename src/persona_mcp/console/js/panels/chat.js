// Chat with the chosen persona: the reply streams in (persona.chat with stream: true
// sends persona.chat.delta notifications), and beside it the memories it used, each
// with the parts of its score (`why`).

import { h, clear, field, errorLine, showError, hideError, announce, fmtNum, fmtDate } from "../ui.js";

const SCORE_PARTS = ["lexical", "semantic", "neighbour", "date", "importance", "recency"];

function whyList(why) {
  const parts = SCORE_PARTS.filter((k) => typeof why[k] === "number").map((k) => {
    const v = why[k];
    const width = Math.min(100, Math.abs(v) * 100);
    return h(
      "li",
      { class: "part" },
      h("span", { class: "part-name" }, k),
      h("span", { class: `bar${v < 0 ? " neg" : ""}`, "aria-hidden": "true" }, h("span", { class: "fill", dataset: { w: width.toFixed(0) } })),
      h("span", { class: "num" }, fmtNum(v, 3)),
    );
  });
  const terms = Array.isArray(why.matched_terms) && why.matched_terms.length ? why.matched_terms.join(", ") : null;
  return [
    h("ul", { class: "why", "aria-label": "Score parts" }, parts),
    typeof why.weight === "number" && why.weight !== 1 ? h("p", { class: "small" }, `weight ×${fmtNum(why.weight)}`) : null,
    terms ? h("p", { class: "small" }, "Matched: ", h("span", { class: "terms" }, terms)) : null,
  ];
}

/** Bars get their width from data-w after insertion (no inline style attributes: CSP). */
export function sizeBars(root) {
  for (const fill of root.querySelectorAll(".fill[data-w]")) fill.style.width = `${fill.dataset.w}%`;
}

export function memoriesUsed(memories) {
  if (!memories.length) {
    return h("aside", { class: "used empty", "aria-label": "Memories used" }, h("p", {}, "No memories were used for this reply."));
  }
  return h(
    "aside",
    { class: "used", "aria-label": "Memories used" },
    h("h4", {}, `Memories used (${memories.length})`),
    h(
      "ol",
      {},
      memories.map((m) =>
        h(
          "li",
          { class: "used-memory", dataset: { memoryId: m.id } },
          h("p", { class: "content" }, m.content),
          h("p", { class: "small" }, `${m.memory_type} · score ${fmtNum(m.score, 3)} · said by ${m.speaker} · ${fmtDate(m.occurred_at)}`),
          h("details", { open: true }, h("summary", {}, "Why it was recalled"), whyList(m.why || {})),
        ),
      ),
    ),
  );
}

export function createPanel(ctx) {
  const err = errorLine();
  const heading = h("h2", { id: "chat-title", tabindex: -1 }, "Chat");
  const who = h("p", { class: "who" });
  const log = h("div", { class: "chat-log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const message = h("textarea", { rows: 2, required: true, placeholder: "Say something…" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", hidden: true }, "Stop");
  const end = h("button", { type: "button" }, "End conversation");
  let controller = null;

  const form = h(
    "form",
    { class: "chat-form", "aria-label": "Send a message", novalidate: true },
    field("Message", message, "Enter sends; Shift+Enter starts a new line"),
    h("div", { class: "actions" }, send, stop, end),
  );

  function bubble(kind, text) {
    return h("div", { class: `bubble ${kind}` }, h("p", { class: "text" }, text));
  }

  async function loadHistory() {
    const persona = ctx.persona;
    clear(log);
    if (!persona) return;
    try {
      const status = await ctx.rpc.call("conversation.status", { persona_id: persona.id });
      for (const m of status.recent_messages || []) {
        const kind = m.role === "user" ? "user" : "persona";
        log.append(h("div", { class: `exchange ${kind}-only` }, h("div", { class: "turn" }, bubble(kind, m.content))));
      }
      log.scrollTop = log.scrollHeight;
    } catch (e) {
      showError(err, e);
    }
  }

  function show() {
    hideError(err);
    const persona = ctx.persona;
    who.textContent = persona ? `Talking with ${persona.name} (mood: ${persona.mood}).` : "Choose a persona first.";
    heading.textContent = persona ? `Chat with ${persona.name}` : "Chat";
    loadHistory();
  }

  async function sendMessage() {
    const persona = ctx.persona;
    const text = message.value.trim();
    if (!persona || !text) return;
    hideError(err);
    const replyText = h("p", { class: "text streaming" });
    const reply = h("div", { class: "bubble persona", "aria-busy": "true" }, h("p", { class: "speaker" }, persona.name), replyText);
    const exchange = h("div", { class: "exchange" }, h("div", { class: "turn" }, bubble("user", text), reply));
    log.append(exchange);
    log.scrollTop = log.scrollHeight;
    message.value = "";
    send.disabled = true;
    stop.hidden = false;
    controller = new AbortController();
    try {
      const result = await ctx.rpc.call(
        "persona.chat",
        { persona_id: persona.id, message: text, stream: true },
        {
          signal: controller.signal,
          onNotify: (method, params) => {
            if (method === "persona.chat.delta") {
              replyText.textContent += params.delta;
              log.scrollTop = log.scrollHeight;
            }
          },
        },
      );
      replyText.textContent = result.response; // the whole reply, as stored
      replyText.classList.remove("streaming");
      reply.append(
        h("p", { class: "meta small" }, `turn ${result.turn_number} · ${result.model} · continue score ${fmtNum(result.continue_score)} · ${result.tokens_used} tokens · ${fmtNum(result.processing_time)} s`),
      );
      const aside = memoriesUsed(result.memories_used);
      exchange.append(aside);
      sizeBars(aside);
      announce(`${persona.name} replied, using ${result.memories_used.length} memor${result.memories_used.length === 1 ? "y" : "ies"}.`);
    } catch (e) {
      replyText.classList.remove("streaming");
      reply.classList.add("failed");
      if (!replyText.textContent) replyText.textContent = "(no reply)";
      showError(err, e);
    } finally {
      reply.setAttribute("aria-busy", "false");
      send.disabled = false;
      stop.hidden = true;
      controller = null;
      message.focus();
      log.scrollTop = log.scrollHeight;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!send.disabled) sendMessage();
    }
  });
  stop.addEventListener("click", () => controller && controller.abort());
  end.addEventListener("click", async () => {
    const persona = ctx.persona;
    if (!persona) return;
    hideError(err);
    end.disabled = true;
    try {
      const result = await ctx.rpc.call("conversation.end", { persona_id: persona.id });
      log.append(h("p", { class: "system-note" }, `Conversation ended after ${result.turns} turns. Summary: ${result.summary || "(none)"}`));
      announce("Conversation ended.");
    } catch (e) {
      showError(err, e);
    } finally {
      end.disabled = false;
    }
  });

  ctx.addEventListener("persona", () => {
    if (!element.hidden) show();
  });

  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "chat-title" },
    heading,
    who,
    log,
    err,
    form,
  );
  return { id: "chat", title: "Chat", element, show };
}

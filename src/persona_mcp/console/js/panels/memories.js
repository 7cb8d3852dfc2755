// Memories of the chosen persona: search with filters (memory.search), every memory a
// page at a time (memory.list), and one memory in detail: its importance over time under
// the current decay config, pin/unpin, edit with history, forget.

import { h, clear, field, errorLine, showError, hideError, busy, announce, fmtNum, fmtDate, table, facts, confirmButton } from "../ui.js";
import { decayCurve } from "../decay.js";
import { decayChart } from "../charts.js";

export const MEMORY_TYPES = ["conversation", "fact", "observation", "reflection", "episode", "psyche", "goal", "visual"];
const PAGE = 20;

function typeSelect(label, anyText) {
  const select = h("select", {}, h("option", { value: "" }, anyText), MEMORY_TYPES.map((t) => h("option", { value: t }, t)));
  return { select, el: field(label, select) };
}

function importanceCell(m) {
  return h(
    "span",
    { class: "importance" },
    h("span", { class: "num" }, fmtNum(m.importance, 3)),
    h("span", { class: "minibar", "aria-hidden": "true" }, h("span", { class: "fill", dataset: { w: Math.round(m.importance * 100) } })),
  );
}

function sizeBars(root) {
  for (const fill of root.querySelectorAll(".fill[data-w]")) fill.style.width = `${fill.dataset.w}%`;
}

/** A local calendar day as an ISO moment: its first instant, or with `end` its last. */
function dayBound(value, end) {
  if (!value) return null;
  const [y, m, d] = value.split("-").map(Number);
  const date = end ? new Date(y, m - 1, d, 23, 59, 59, 999) : new Date(y, m - 1, d);
  return date.toISOString();
}

export function createPanel(ctx) {
  const rpc = ctx.rpc;
  const err = errorLine();
  const heading = h("h2", { id: "memories-title", tabindex: -1 }, "Memories");
  let decayConfig = null;
  let current = null; // the memory shown in detail

  // -- search -------------------------------------------------------------------------
  const query = h("input", { type: "search", required: true, maxlength: 4000 });
  const searchType = typeSelect("Type", "any type");
  const minImportance = h("input", { type: "number", min: 0, max: 1, step: 0.05, placeholder: "0 to 1" });
  const since = h("input", { type: "date" });
  const until = h("input", { type: "date" });
  const searchButton = h("button", { type: "submit", class: "primary" }, "Search");
  const searchErr = errorLine();
  const results = h("div", { class: "results", "aria-live": "polite" });
  const searchForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Search memories", novalidate: true },
    field("Words or meaning", query),
    searchType.el,
    field("Least importance", minImportance),
    field("From", since),
    field("Until", until),
    h("div", { class: "actions" }, searchButton, h("button", { type: "reset" }, "Clear")),
  );
  searchForm.addEventListener("reset", () => {
    clear(results);
    hideError(searchErr);
  });
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ctx.persona) return;
    const params = { persona_id: ctx.persona.id, query: query.value, limit: 25 };
    if (searchType.select.value) params.memory_type = searchType.select.value;
    if (minImportance.value !== "") params.min_importance = Number(minImportance.value);
    if (since.value) params.since = dayBound(since.value, false);
    if (until.value) params.until = dayBound(until.value, true);
    busy(searchButton, searchErr, async () => {
      const found = await rpc.call("memory.search", params);
      const rows = found.results.map(({ memory, score, why }) =>
        h(
          "tr",
          { dataset: { memoryId: memory.id } },
          h("td", { class: "content-cell" }, memory.content),
          h("td", {}, memory.memory_type),
          h("td", {}, importanceCell(memory)),
          h("td", { class: "num" }, fmtNum(score, 3)),
          h("td", { class: "small" }, `lexical ${fmtNum(why.lexical, 2)}, semantic ${fmtNum(why.semantic, 2)}`),
          h("td", {}, h("button", { type: "button", class: "small", onclick: () => openMemory(memory.id) }, "Open")),
        ),
      );
      clear(
        results,
        rows.length
          ? table(`${rows.length} found for “${params.query}”${found.semantic ? "" : " (by words only: embeddings are off or still loading)"}`, ["Memory", "Type", "Importance", "Score", "Why", ""], rows, { class: "search-results" })
          : h("p", {}, `Nothing found for “${params.query}”.`),
      );
      sizeBars(results);
      announce(`${rows.length} memories found.`);
      loadPage(); // each hit counts as an access
    });
  });

  // -- the paged list -----------------------------------------------------------------
  const listType = typeSelect("Show", "every type");
  const listErr = errorLine();
  const listSlot = h("div", { class: "list" });
  const prev = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const pageLabel = h("span", { class: "page-label", "aria-live": "polite" });
  let cursors = [null]; // the cursor of each page seen so far
  let pageIndex = 0;
  let nextCursor = null;

  async function loadPage() {
    if (!ctx.persona) return;
    hideError(listErr);
    const params = { persona_id: ctx.persona.id, limit: PAGE };
    if (listType.select.value) params.memory_type = listType.select.value;
    if (cursors[pageIndex]) params.cursor = cursors[pageIndex];
    try {
      const page = await rpc.call("memory.list", params);
      nextCursor = page.next_cursor;
      const rows = page.memories.map((m) =>
        h(
          "tr",
          { dataset: { memoryId: m.id }, class: m.pinned ? "pinned" : null },
          h("td", { class: "content-cell" }, m.content),
          h("td", {}, m.memory_type),
          h("td", {}, importanceCell(m)),
          h("td", { class: "num" }, String(m.access_count)),
          h("td", { class: "small" }, fmtDate(m.created_at)),
          h("td", {}, m.pinned ? h("span", { class: "badge pin" }, "pinned") : null),
          h("td", {}, h("button", { type: "button", class: "small", onclick: () => openMemory(m.id) }, "Open")),
        ),
      );
      clear(
        listSlot,
        rows.length
          ? table(`Memories of ${ctx.persona.name}, in the order they were stored`, ["Memory", "Type", "Importance", "Accesses", "Stored", "Pinned", ""], rows, { class: "memory-table" })
          : h("p", {}, pageIndex ? "No more memories." : `${ctx.persona.name} holds no memories${params.memory_type ? " of this type" : ""} yet.`),
      );
      sizeBars(listSlot);
      prev.disabled = pageIndex === 0;
      next.disabled = !nextCursor;
      pageLabel.textContent = `Page ${pageIndex + 1}`;
    } catch (e) {
      showError(listErr, e);
    }
  }

  prev.addEventListener("click", () => {
    if (pageIndex > 0) {
      pageIndex -= 1;
      loadPage();
    }
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors = cursors.slice(0, pageIndex + 1);
    cursors.push(nextCursor);
    pageIndex += 1;
    loadPage();
  });
  listType.select.addEventListener("change", () => {
    cursors = [null];
    pageIndex = 0;
    loadPage();
  });

  // -- one memory -----------------------------------------------------------------------
  const detail = h("section", { class: "detail card", "aria-labelledby": "memory-detail-title", hidden: true });
  const horizon = h("select", {}, [7, 30, 90, 365].map((d) => h("option", { value: d, selected: d === 30 }, `${d} days`)));
  horizon.addEventListener("change", () => current && renderDetail(current.memory, current.history));

  function chartFor(memory) {
    const days = Number(horizon.value);
    if (!decayConfig) return h("p", {}, "The decay config could not be read.");
    const points = decayCurve(memory, decayConfig, days);
    const end = points[points.length - 1].importance;
    const how = `${decayConfig.mode} decay, rate ${decayConfig.rate} per hour, floor ${decayConfig.min_importance}`;
    let caption;
    if (memory.pinned) caption = `Pinned: importance stays at ${fmtNum(memory.importance, 3)}; it never decays and is never pruned.`;
    else caption = `Importance ${fmtNum(memory.importance, 3)} now, ${fmtNum(end, 3)} in ${days} days (${how}).`;
    if (!decayConfig.enabled || !decayConfig.running) caption += " Background decay is off: this is the course a decay pass would follow.";
    return decayChart(points, { days, floor: decayConfig.min_importance, caption });
  }

  function historyList(history) {
    if (!history) return null;
    const versions = history.versions.map((v) =>
      h("li", {}, h("p", { class: "content" }, v.content), h("p", { class: "small" }, `version ${v.version} · importance ${fmtNum(v.importance, 3)} · ${v.reason} · ${fmtDate(v.changed_at)}`)),
    );
    const chain = history.corrections.map((m) =>
      h("li", {}, h("p", { class: "content" }, m.content), h("p", { class: "small" }, m.superseded_by ? `superseded by ${m.superseded_by}` : "the current statement")),
    );
    return h(
      "div",
      { class: "history" },
      h("h4", {}, "Earlier versions"),
      versions.length ? h("ol", { class: "versions" }, versions) : h("p", {}, "Never edited."),
      chain.length ? [h("h4", {}, "Chain of corrections"), h("ol", {}, chain)] : null,
    );
  }

  function renderDetail(memory, history) {
    current = { memory, history };
    const derr = errorLine();
    const pin = h("button", { type: "button", class: "pin-toggle", "aria-pressed": String(memory.pinned) }, memory.pinned ? "Unpin" : "Pin");
    pin.addEventListener("click", () =>
      busy(pin, derr, async () => {
        const { memory: changed } = await rpc.call(memory.pinned ? "memory.unpin" : "memory.pin", { memory_id: memory.id });
        announce(changed.pinned ? "Pinned." : "Unpinned.");
        await reopen(changed.id);
        loadPage();
      }),
    );
    const content = h("textarea", { rows: 3, required: true }, memory.content);
    const importance = h("input", { type: "number", min: 0, max: 1, step: 0.01, value: memory.importance });
    const save = h("button", { type: "submit", class: "primary" }, "Save edit");
    const edit = h(
      "form",
      { class: "edit", "aria-label": "Edit this memory", novalidate: true },
      field("Content", content),
      field("Importance", importance, "0 to 1; the old version is kept in the history"),
      h("div", { class: "actions" }, save),
    );
    edit.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = { memory_id: memory.id };
      if (content.value !== memory.content) params.content = content.value;
      if (importance.value !== "" && Number(importance.value) !== memory.importance) {
        params.importance = Number(importance.value);
      }
      if (Object.keys(params).length === 1) {
        announce("Nothing changed.");
        return;
      }
      busy(save, derr, async () => {
        await rpc.call("memory.update", params);
        announce("Memory saved; the earlier version is in its history.");
        await reopen(memory.id);
        loadPage();
      });
    });
    const forget = confirmButton("Forget", "Forget this memory for good?", async () => {
      try {
        await rpc.call("memory.delete", { memory_id: memory.id });
        for (const row of results.querySelectorAll(`tr[data-memory-id="${CSS.escape(memory.id)}"]`)) row.remove();
        announce("Memory forgotten.");
        closeDetail();
        loadPage();
      } catch (e) {
        showError(derr, e);
      }
    });
    clear(
      detail,
      h("h3", { id: "memory-detail-title", tabindex: -1 }, "Memory", memory.pinned ? h("span", { class: "badge pin" }, "pinned") : null),
      h("blockquote", { class: "memory-content" }, memory.content),
      facts([
        ["Type", memory.memory_type],
        ["Importance", fmtNum(memory.importance, 3)],
        ["Feeling", fmtNum(memory.emotional_valence, 2)],
        ["Accesses", `${memory.access_count}${memory.last_accessed_at ? `, last ${fmtDate(memory.last_accessed_at)}` : ""}`],
        ["Happened", fmtDate(memory.occurred_at)],
        ["Stored", fmtDate(memory.created_at)],
        ["Source", memory.source],
        ["Id", h("code", {}, memory.id)],
        ...(memory.superseded_by ? [["Superseded by", h("code", {}, memory.superseded_by)]] : []),
        ...(Object.keys(memory.metadata).length ? [["Metadata", h("code", {}, JSON.stringify(memory.metadata))]] : []),
      ]),
      h("div", { class: "chart-head" }, h("h4", {}, "Importance over time"), field("Horizon", horizon)),
      chartFor(memory),
      derr,
      h("div", { class: "actions" }, pin, forget, h("button", { type: "button", onclick: closeDetail }, "Close")),
      edit,
      historyList(history),
    );
    detail.hidden = false;
  }

  async function reopen(id) {
    const history = await rpc.call("memory.history", { memory_id: id });
    renderDetail(history.memory, history);
  }

  async function openMemory(id) {
    hideError(err);
    try {
      if (!decayConfig) decayConfig = await rpc.call("memory.decay_stats");
      await reopen(id);
      detail.querySelector("h3").focus();
      detail.scrollIntoView({ block: "nearest" });
    } catch (e) {
      showError(err, e);
    }
  }

  function closeDetail() {
    current = null;
    detail.hidden = true;
    clear(detail);
  }

  async function show() {
    hideError(err);
    heading.textContent = ctx.persona ? `Memories of ${ctx.persona.name}` : "Memories";
    try {
      decayConfig = await rpc.call("memory.decay_stats");
    } catch (e) {
      showError(err, e);
    }
    if (current) {
      try {
        await reopen(current.memory.id);
      } catch {
        closeDetail();
      }
    }
    await loadPage();
  }

  ctx.addEventListener("persona", () => {
    cursors = [null];
    pageIndex = 0;
    closeDetail();
    clear(results);
    if (!element.hidden) show();
  });

  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "memories-title" },
    heading,
    err,
    h("h3", {}, "Search"),
    searchForm,
    searchErr,
    results,
    detail,
    h("h3", {}, "All memories"),
    h("div", { class: "toolbar" }, listType.el),
    listErr,
    listSlot,
    h("div", { class: "pager" }, prev, pageLabel, next),
  );
  return { id: "memories", title: "Memories", element, show, open: openMemory };
}

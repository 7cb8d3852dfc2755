// The chatroom: start a simulation, watch its turns live (simulation.turn events), stop
// it; earlier runs and their transcripts.

import { h, clear, field, errorLine, showError, hideError, busy, announce, fmtNum, fmtDate, table } from "../ui.js";

export function createPanel(ctx) {
  const rpc = ctx.rpc;
  const err = errorLine();
  const who = h("fieldset", { class: "who-joins" });
  const topic = h("input", { type: "text", required: true, maxlength: 500, value: "the sea at night" });
  const turns = h("input", { type: "number", min: 1, max: 200, value: 12 });
  const seed = h("input", { type: "number", min: 0, step: 1 });
  const start = h("button", { type: "submit", class: "primary" }, "Start");
  const listSlot = h("div", {});
  const viewer = h("section", { class: "viewer card", hidden: true, "aria-labelledby": "sim-view-title" });
  let watching = null; // {id, log, status, stop}
  let poll = null;

  const form = h(
    "form",
    { class: "sim-form", "aria-label": "Start a chatroom", novalidate: true },
    who,
    field("Topic", topic),
    field("Most turns", turns),
    field("Seed", seed, "Optional: the same seed replays the same offline run"),
    h("div", { class: "actions" }, start),
  );

  function fillWho() {
    clear(
      who,
      h("legend", {}, "Who joins (2 to 8)"),
      ctx.personas.map((p, i) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", value: p.id, checked: i < 2 }), ` ${p.name}`),
      ),
    );
  }

  function turnLine(t) {
    return h(
      "li",
      { class: "sim-turn", dataset: { turn: t.turn } },
      h("p", {}, h("strong", {}, `${t.speaker}: `), t.text),
      h("p", { class: "small" }, `turn ${t.turn} · continue score ${fmtNum(t.continue_score)} · ${t.model}`),
    );
  }

  function statusText(s) {
    const end = s.end_reason ? ` (${s.end_reason})` : "";
    return `${s.status}${end}: ${s.turns} of ${s.max_turns} turns; in the room: ${s.remaining.join(", ") || "nobody"}.`;
  }

  async function refreshStatus() {
    if (!watching) return;
    try {
      const s = await rpc.call("simulation.status", { simulation_id: watching.id });
      watching.status.textContent = statusText(s);
      watching.stop.hidden = s.status !== "running";
      if (s.status !== "running" && (poll || watching.live)) {
        stopPolling();
        watching.live = false;
        loadList();
      }
    } catch (e) {
      showError(err, e);
      stopPolling();
    }
  }

  function stopPolling() {
    if (poll) clearInterval(poll);
    poll = null;
  }

  async function watch(id) {
    hideError(err);
    stopPolling();
    const log = h("ol", { class: "sim-log", role: "log", "aria-live": "polite", "aria-label": "Chatroom turns" });
    const status = h("p", { class: "status", role: "status" });
    const stop = h("button", { type: "button", hidden: true }, "Stop");
    stop.addEventListener("click", () =>
      busy(stop, err, async () => {
        const s = await rpc.call("simulation.stop", { simulation_id: id });
        status.textContent = statusText(s);
        announce("Simulation stopping.");
      }),
    );
    watching = { id, log, status, stop, live: true };
    clear(viewer, h("h3", { id: "sim-view-title", tabindex: -1 }, "Chatroom"), status, h("div", { class: "actions" }, stop), log);
    viewer.hidden = false;
    try {
      const transcript = await rpc.call("simulation.transcript", { simulation_id: id });
      for (const t of transcript.turns) {
        if (!log.querySelector(`[data-turn="${Number(t.turn)}"]`)) log.append(turnLine(t));
      }
      await refreshStatus();
      if (transcript.status === "running") poll = setInterval(refreshStatus, 2000);
    } catch (e) {
      showError(err, e);
    }
  }

  async function loadList() {
    try {
      const { simulations } = await rpc.call("simulation.list", { limit: 20 });
      clear(
        listSlot,
        simulations.length
          ? table(
              "Simulations, newest first",
              ["Topic", "Who", "Status", "Turns", "Started", ""],
              simulations.map((s) =>
                h(
                  "tr",
                  {},
                  h("td", {}, s.topic),
                  h("td", {}, s.personas.join(", ")),
                  h("td", {}, s.status),
                  h("td", { class: "num" }, `${s.turns} / ${s.max_turns}`),
                  h("td", { class: "small" }, fmtDate(s.started_at)),
                  h("td", {}, h("button", { type: "button", class: "small", onclick: () => watch(s.simulation_id) }, "Watch")),
                ),
              ),
            )
          : h("p", {}, "No simulations yet."),
      );
    } catch (e) {
      showError(err, e);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = [...who.querySelectorAll("input:checked")].map((c) => c.value);
    const params = { personas: chosen, topic: topic.value, max_turns: Number(turns.value) };
    if (seed.value !== "") params.seed = Number(seed.value);
    busy(start, err, async () => {
      const started = await rpc.call("simulation.start", params);
      announce("Simulation started.");
      await watch(started.simulation_id);
      await loadList();
    });
  });

  // Live turns of the run being watched (the subscription is made once per connection).
  ctx.rpc.on("simulation.turn", (turn) => {
    if (!watching || turn.simulation_id !== watching.id) return;
    if (!watching.log.querySelector(`[data-turn="${Number(turn.turn)}"]`)) watching.log.append(turnLine(turn));
    refreshStatus();
  });

  async function show() {
    hideError(err);
    fillWho();
    await loadList();
  }

  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "simulations-title" },
    h("h2", { id: "simulations-title", tabindex: -1 }, "Chatroom"),
    h("p", {}, "Personas talk among themselves about a topic; each listener's relationship with the speaker and its mood move with every line."),
    err,
    form,
    viewer,
    h("h3", {}, "Earlier runs"),
    listSlot,
  );
  return { id: "simulations", title: "Chatroom", element, show, hide: stopPolling };
}

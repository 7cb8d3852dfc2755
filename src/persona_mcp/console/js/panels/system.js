// The server: status, model, embedder readiness, background jobs, storage size
// (system.status; the jobs and storage need admin scope), the models on offer
// (system.models), and what decay and pruning have done.

import { h, clear, errorLine, errorText, showError, hideError, facts, fmtBytes, fmtDate, fmtDuration, fmtNum } from "../ui.js";

function section(title, body) {
  return h("div", { class: "card" }, h("h3", {}, title), body);
}

function yesNo(value) {
  return value ? "yes" : "no";
}

export function createPanel(ctx) {
  const rpc = ctx.rpc;
  const err = errorLine();
  const slot = h("div", { class: "cards system", "aria-live": "polite" });
  const refresh = h("button", { type: "button" }, "Refresh");

  async function show() {
    hideError(err);
    const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));
    const [status, models, decay, prune] = await Promise.all([
      settle(rpc.call("system.status")),
      settle(rpc.call("system.models")),
      settle(rpc.call("memory.decay_stats")),
      settle(rpc.call("memory.prune_stats")),
    ]);
    if (status.error) {
      showError(err, status.error);
      return;
    }
    const s = status.value;
    const needAdmin = "needs admin scope";
    const cards = [
      section(
        "Server",
        facts([
          ["Version", s.version],
          ["Up for", fmtDuration(s.uptime_seconds)],
          ["Started", fmtDate(s.started_at)],
          ["Connections", String(s.connections)],
          ["Open sessions", String(s.open_sessions)],
          ...Object.entries(s.counts).map(([k, v]) => [`Your ${k}`, String(v)]),
        ]),
      ),
      section(
        "Model",
        facts([
          ["Configured", s.llm.provider],
          ["In use", s.llm.active],
          ["Answers", yesNo(s.llm.available)],
          ["Default model", s.llm.default_model],
          ["Detail", s.llm.detail],
          ["Address", s.llm.address || (s.background ? "—" : needAdmin)],
          [
            "Models on offer",
            models.error
              ? h("span", { class: "error-inline" }, errorText(models.error))
              : models.value.models.map((m) => m.name).join(", ") || "none listed",
          ],
        ]),
      ),
      section(
        "Embedder",
        facts([
          ["Provider", s.embedder.provider],
          ["Model", s.embedder.model || "—"],
          ["Ready", h("span", { class: s.embedder.ready ? "ok" : "warn" }, yesNo(s.embedder.ready))],
          ["Dimensions", s.embedder.dim ? String(s.embedder.dim) : "—"],
          ["Loaded in", s.embedder.load_seconds ? `${fmtNum(s.embedder.load_seconds, 1)} s` : "—"],
          ["Error", s.embedder.error || "none"],
        ]),
      ),
      section(
        "Background jobs",
        s.background
          ? facts([
              ["Enabled", yesNo(s.background.enabled)],
              ["Decay running", yesNo(s.background.decay_running)],
              ["Session clean-up every", fmtDuration(s.background.session_cleanup_interval_seconds)],
              ["Sessions closed", String(s.background.sessions_closed)],
            ])
          : h("p", {}, `Hidden: ${needAdmin}.`),
      ),
      section(
        "Storage",
        s.storage
          ? facts([
              ["Database", h("code", {}, s.storage.path)],
              ["Size", fmtBytes(s.storage.bytes)],
              ...Object.entries(s.storage.files).map(([k, v]) => [`File ${k}`, fmtBytes(v)]),
            ])
          : h("p", {}, `Hidden: ${needAdmin}.`),
      ),
      section(
        "Decay",
        decay.error
          ? h("p", { class: "error-inline" }, errorText(decay.error))
          : facts([
              ["Running", yesNo(decay.value.running)],
              ["Mode", decay.value.mode],
              ["Rate", `${decay.value.rate} per hour`],
              ["Floor", String(decay.value.min_importance)],
              ["Every", fmtDuration(decay.value.interval_seconds)],
              ["Passes", `${decay.value.runs} (${decay.value.decayed_total} memories aged)`],
              ["Last pass", fmtDate(decay.value.last_run_at)],
              ["Next pass", fmtDate(decay.value.next_run_at)],
            ]),
      ),
      section(
        "Pruning",
        prune.error
          ? h("p", { class: "error-inline" }, errorText(prune.error))
          : facts([
              ["Runs", String(prune.value.runs)],
              ["Pruned", String(prune.value.pruned_total)],
              ["Restored", String(prune.value.restored_total)],
              ["In the archive", String(prune.value.archived)],
              ["Strategy", prune.value.config.strategy],
            ]),
      ),
    ];
    clear(slot, cards);
  }

  refresh.addEventListener("click", show);
  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "system-title" },
    h("h2", { id: "system-title", tabindex: -1 }, "System"),
    err,
    h("div", { class: "toolbar" }, refresh),
    slot,
  );
  return { id: "system", title: "System", element, show };
}

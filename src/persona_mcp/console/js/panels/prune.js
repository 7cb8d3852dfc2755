// Pruning the chosen persona: a preview (memory.prune with dry_run, and
// memory.prune_recommendations with a reason for each candidate), a one-click prune,
// and restoring what that run removed (memory.restore with its prune_run_id).

import { h, clear, field, errorLine, showError, hideError, busy, announce, fmtNum, fmtDate, table, confirmButton } from "../ui.js";

const STRATEGIES = ["importance_access_age", "importance_access", "importance_only"];

export function createPanel(ctx) {
  const rpc = ctx.rpc;
  const err = errorLine();
  const heading = h("h2", { id: "prune-title", tabindex: -1 }, "Prune");
  const strategy = h("select", {}, STRATEGIES.map((s) => h("option", { value: s }, s.replaceAll("_", " "))));
  const preview = h("button", { type: "button", class: "primary" }, "Preview (dry run)");
  const summary = h("div", { class: "prune-summary", "aria-live": "polite" });
  const candidates = h("div", { class: "candidates" });
  const outcome = h("div", { class: "prune-outcome", "aria-live": "polite" });
  const lastRun = h("div", { class: "last-run" });

  function restoreButton(runId, label = "Restore this run") {
    const button = h("button", { type: "button" }, label);
    button.addEventListener("click", () =>
      busy(button, err, async () => {
        const restored = await rpc.call("memory.restore", { prune_run_id: runId });
        outcome.append(h("p", { class: "ok" }, `Restored ${restored.restored_count} memor${restored.restored_count === 1 ? "y" : "ies"} of run ${runId}.`));
        announce(`Restored ${restored.restored_count} memories.`);
        button.remove();
        await refreshLastRun();
      }),
    );
    return button;
  }

  async function refreshLastRun() {
    try {
      const stats = await rpc.call("memory.prune_stats");
      if (!stats.config) return;
      if (!strategy.dataset.touched) strategy.value = stats.config.strategy;
      const run = stats.last_run;
      clear(
        lastRun,
        h("h3", {}, "Last prune run"),
        run
          ? h(
              "p",
              {},
              `${fmtDate(run.started_at * 1000)}, ${run.persona_id ? ctx.personaName(run.persona_id) : "every persona"}: ${run.pruned_count} pruned (${run.trigger}, ${run.strategy.replaceAll("_", " ")}), ${run.restored_count} restored. `,
              run.pruned_count > run.restored_count ? restoreButton(run.id, "Restore that run") : null,
            )
          : h("p", {}, "No prune has run yet."),
        h("p", { class: "small" }, `Config: prune below ${stats.config.prune_below}; past ${stats.config.max_memories_per_persona} memories a persona is pruned back to ${stats.config.pruning_threshold} automatically${stats.config.auto_prune ? "" : " (off)"}. Archive: ${stats.archived} memories.`),
      );
    } catch (e) {
      showError(err, e);
    }
  }

  function pruneNow(count) {
    return confirmButton(`Prune ${count}`, `Remove these ${count} memories? They go to the archive and can be restored.`, async () => {
      const persona = ctx.persona;
      try {
        const run = await rpc.call("memory.prune", { persona_id: persona.id, strategy: strategy.value });
        clear(
          outcome,
          h(
            "p",
            { class: "ok" },
            `Pruned ${run.pruned_count} of ${run.total_before}; ${run.remaining} remain. `,
            run.prune_run_id ? restoreButton(run.prune_run_id) : null,
          ),
        );
        announce(`Pruned ${run.pruned_count} memories.`);
        clear(candidates);
        clear(summary);
        await refreshLastRun();
      } catch (e) {
        showError(err, e);
      }
    });
  }

  preview.addEventListener("click", () =>
    busy(preview, err, async () => {
      const persona = ctx.persona;
      if (!persona) return;
      clear(outcome);
      const params = { persona_id: persona.id, strategy: strategy.value };
      const [dry, recs] = await Promise.all([
        rpc.call("memory.prune", { ...params, dry_run: true }),
        rpc.call("memory.prune_recommendations", { ...params, limit: 200 }),
      ]);
      clear(
        summary,
        h(
          "p",
          {},
          `A prune would remove ${dry.pruned_count} of ${dry.total_before} memories of ${persona.name}; ${dry.protected} are protected (importance 0.8 or more, or accessed 8 times or more) and at least 10 are always kept. Candidates score below ${recs.prune_below} (${recs.strategy.replaceAll("_", " ")}).`,
        ),
        dry.pruned_count ? pruneNow(dry.pruned_count) : null,
      );
      const rows = recs.candidates.map((c) =>
        h(
          "tr",
          { dataset: { memoryId: c.memory_id } },
          h("td", { class: "content-cell" }, c.content),
          h("td", { class: "num" }, fmtNum(c.importance, 3)),
          h("td", { class: "num" }, String(c.access_count)),
          h("td", { class: "num" }, fmtNum(c.age_days, 1)),
          h("td", { class: "num" }, fmtNum(c.score, 3)),
          h("td", { class: "reason" }, c.reason),
        ),
      );
      clear(
        candidates,
        rows.length
          ? table(`Candidates, lowest score first (${rows.length})`, ["Memory", "Importance", "Accesses", "Age (days)", "Score", "Reason"], rows, { class: "prune-candidates" })
          : h("p", {}, "Nothing would be pruned now."),
      );
      announce(`${dry.pruned_count} memories would be pruned.`);
    }),
  );
  strategy.addEventListener("change", () => {
    strategy.dataset.touched = "1";
  });

  function show() {
    hideError(err);
    heading.textContent = ctx.persona ? `Prune the memories of ${ctx.persona.name}` : "Prune";
    clear(summary);
    clear(candidates);
    refreshLastRun();
  }

  ctx.addEventListener("persona", () => {
    clear(outcome);
    if (!element.hidden) show();
  });

  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "prune-title" },
    heading,
    h("p", {}, "A prune moves a persona's least valuable memories to the archive; restoring brings them back exactly. Nothing is removed by a preview."),
    err,
    h("div", { class: "toolbar" }, field("Strategy", strategy), preview),
    summary,
    outcome,
    candidates,
    lastRun,
  );
  return { id: "prune", title: "Prune", element, show };
}

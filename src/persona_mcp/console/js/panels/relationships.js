// Relationships as a graph of the personas and you (persona.relationship for each
// persona), the same figures as a table, and how compatible each pair of personas is.

import { h, clear, errorLine, showError, hideError, fmtNum, table } from "../ui.js";
import { relationshipGraph } from "../charts.js";

const MAX_PAIRS_OF = 8; // compatibility for at most this many personas (28 pairs)

export function createPanel(ctx) {
  const rpc = ctx.rpc;
  const err = errorLine();
  const graphSlot = h("div", { class: "graph" });
  const tableSlot = h("div", {});
  const compatSlot = h("div", {});
  const refresh = h("button", { type: "button" }, "Refresh");

  async function show() {
    hideError(err);
    try {
      const personas = await ctx.refreshPersonas();
      const views = await Promise.all(personas.map((p) => rpc.call("persona.relationship", { persona_id: p.id })));
      const edges = [];
      for (const view of views) {
        for (const r of view.relationships) {
          const from = ctx.personaName(view.persona_id);
          const to = r.other_id === "user" ? "you" : r.other_name;
          edges.push({
            from: view.persona_id,
            to: r.other_id,
            affinity: r.affinity,
            trust: r.trust,
            familiarity: r.familiarity,
            label: `${from} → ${to}: affinity ${fmtNum(r.affinity)}, trust ${fmtNum(r.trust)}, familiarity ${fmtNum(r.familiarity)}`,
            rel: r,
            fromName: from,
            toName: to,
          });
        }
      }
      const nodes = [{ id: "user", label: "You", kind: "user" }, ...personas.map((p) => ({ id: p.id, label: p.name, kind: "persona" }))];
      const summary = edges.length
        ? `Relationship graph: ${edges.length} relationships among you and ${personas.length} personas; the table below lists them.`
        : "No relationships yet: chat with a persona or run a chatroom.";
      clear(
        graphSlot,
        relationshipGraph(nodes, edges, summary),
        h(
          "p",
          { class: "legend small" },
          "An arrow is one persona's view of someone. Colour: affinity (red dislike, grey neutral, green fondness); thickness: familiarity; solidity: trust.",
        ),
      );
      clear(
        tableSlot,
        edges.length
          ? table(
              "Relationships",
              ["Whose view", "Of whom", "Affinity", "Trust", "Familiarity", "Exchanges", "Latest change"],
              edges.map((e) =>
                h(
                  "tr",
                  {},
                  h("td", {}, e.fromName),
                  h("td", {}, e.toName),
                  h("td", { class: "num" }, fmtNum(e.affinity)),
                  h("td", { class: "num" }, fmtNum(e.trust)),
                  h("td", { class: "num" }, fmtNum(e.familiarity)),
                  h("td", { class: "num" }, String(e.rel.interaction_count)),
                  h("td", { class: "small" }, e.rel.history.length ? e.rel.history[0].reason : "—"),
                ),
              ),
              { class: "relationship-table" },
            )
          : h("p", {}, summary),
      );
      const some = personas.slice(0, MAX_PAIRS_OF);
      const pairs = [];
      for (let i = 0; i < some.length; i += 1) for (let j = i + 1; j < some.length; j += 1) pairs.push([some[i], some[j]]);
      const scores = await Promise.all(pairs.map(([a, b]) => rpc.call("persona.compatibility", { persona_id: a.id, other_id: b.id })));
      clear(
        compatSlot,
        pairs.length
          ? table(
              "Compatibility of each pair",
              ["Pair", "Compatibility", "Parts"],
              pairs.map(([a, b], i) =>
                h(
                  "tr",
                  {},
                  h("td", {}, `${a.name} & ${b.name}`),
                  h("td", { class: "num" }, fmtNum(scores[i].compatibility)),
                  h("td", { class: "small" }, scores[i].parts.map((p) => `${p.name} ${fmtNum(p.score)} (×${p.weight}): ${p.detail}`).join("; ")),
                ),
              ),
            )
          : null,
      );
    } catch (e) {
      showError(err, e);
    }
  }

  refresh.addEventListener("click", show);
  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "relationships-title" },
    h("h2", { id: "relationships-title", tabindex: -1 }, "Relationships"),
    err,
    h("div", { class: "toolbar" }, refresh),
    graphSlot,
    tableSlot,
    compatSlot,
  );
  return { id: "relationships", title: "Relationships", element, show };
}

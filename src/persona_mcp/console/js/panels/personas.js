// Personas: each with its mood, energy and relationship to you; create and edit them;
// import a character card (persona.import_card) by dropping a PNG or JSON file.

import { h, clear, field, errorLine, showError, hideError, busy, announce, fmtNum } from "../ui.js";

function meter(label, value, max, low, high) {
  const id = `m${Math.random().toString(36).slice(2, 8)}`;
  return h(
    "div",
    { class: "meter-row" },
    h("span", { id }, label),
    h("meter", { min: 0, max, value, low, high, optimum: max, "aria-labelledby": id }),
    h("span", { class: "num" }, `${fmtNum(value, 0)} / ${max}`),
  );
}

function relationshipText(rel) {
  if (!rel) return "No exchanges with you yet.";
  return `Affinity ${fmtNum(rel.affinity)}, trust ${fmtNum(rel.trust)}, familiarity ${fmtNum(rel.familiarity)} over ${rel.interaction_count} exchange${rel.interaction_count === 1 ? "" : "s"}.`;
}

function personaCard(ctx, persona, status, onEdit) {
  const state = persona.interaction_state;
  const topics = Object.entries(persona.topic_preferences)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([t, w]) => `${t} ${fmtNum(w, 2)}`)
    .join(", ");
  const mood = status ? status.mood_state : null;
  const open = (panel) => () => {
    ctx.selectPersona(persona.id);
    ctx.go(panel);
  };
  return h(
    "article",
    { class: "card persona-card", "aria-labelledby": `p-${persona.id}`, dataset: { personaId: persona.id } },
    h("h3", { id: `p-${persona.id}` }, persona.name, persona.builtin ? h("span", { class: "badge" }, "built in") : null),
    h("p", { class: "description" }, persona.description || "No description."),
    h(
      "p",
      { class: "mood" },
      h("strong", {}, "Mood: "),
      h("span", { class: "mood-word" }, persona.mood),
      mood && mood.intensity > 0.05 ? ` · feeling ${mood.label} (intensity ${fmtNum(mood.intensity)})` : null,
    ),
    meter("Social energy", state.social_energy, 100, 30, 60),
    meter("Fatigue", state.interaction_fatigue, 100, 30, 70),
    h("p", { class: "relationship" }, h("strong", {}, "With you: "), status ? relationshipText(status.user_relationship) : "—"),
    h("p", {}, h("strong", {}, "Memories: "), status ? String(status.memory_count) : "—"),
    h("p", { class: "traits" }, h("strong", {}, "Traits: "), persona.personality_traits.join(", ") || "none"),
    h("p", { class: "topics" }, h("strong", {}, "Likes: "), topics || "no topics"),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: open("chat") }, `Chat with ${persona.name}`),
      h("button", { type: "button", onclick: open("memories") }, "Memories"),
      h("button", { type: "button", onclick: () => onEdit(persona) }, "Edit"),
    ),
  );
}

function topicRow(list, topic = "", weight = 0.5) {
  const n = list.children.length + 1;
  const name = h("input", { type: "text", value: topic, "aria-label": `Topic ${n}`, class: "topic-name", maxlength: 100 });
  const value = h("input", {
    type: "number", min: 0, max: 1, step: 0.05, value: weight,
    "aria-label": `Interest in topic ${n} (0 to 1)`, class: "topic-weight",
  });
  const row = h("li", { class: "topic-row" }, name, value);
  row.append(h("button", { type: "button", class: "small", "aria-label": `Remove topic ${n}`, onclick: () => row.remove() }, "Remove"));
  list.append(row);
  return name;
}

/** The create/edit form; `persona` null creates. */
function personaForm(ctx, persona, done) {
  const err = errorLine();
  const name = h("input", { type: "text", required: true, maxlength: 100, value: persona ? persona.name : "" });
  const description = h("textarea", { rows: 2, maxlength: 8000 }, persona ? persona.description : "");
  const traits = h("input", { type: "text", value: persona ? persona.personality_traits.join(", ") : "" });
  const backstory = h("textarea", { rows: 4, maxlength: 8000 }, persona ? persona.backstory : "");
  const model = h("input", { type: "text", maxlength: 200, value: persona && persona.model ? persona.model : "" });
  const topics = h("ul", { class: "topic-list" });
  for (const [t, w] of Object.entries(persona ? persona.topic_preferences : {})) topicRow(topics, t, w);
  const save = h("button", { type: "submit", class: "primary" }, persona ? "Save changes" : "Create persona");
  const title = persona ? `Edit ${persona.name}` : "New persona";

  const form = h(
    "form",
    { class: "card persona-form", "aria-label": title, novalidate: true },
    h("h3", {}, title),
    field("Name", name),
    field("Description", description),
    field("Personality traits", traits, "Separated by commas, e.g. warm, curious"),
    field("Backstory", backstory),
    h(
      "fieldset",
      {},
      h("legend", {}, "Topic preferences (interest from 0 to 1)"),
      topics,
      h("button", { type: "button", class: "small", onclick: () => topicRow(topics).focus() }, "Add topic"),
    ),
    field("Model", model, "Optional: an LLM model for this persona; empty uses the server's default"),
    err,
    h("div", { class: "actions" }, save, h("button", { type: "button", onclick: () => done(null) }, "Cancel")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prefs = {};
    for (const row of topics.children) {
      const t = row.querySelector(".topic-name").value.trim();
      if (t) prefs[t] = Number(row.querySelector(".topic-weight").value);
    }
    const params = {
      name: name.value.trim(),
      description: description.value,
      personality_traits: traits.value.split(",").map((s) => s.trim()).filter(Boolean),
      backstory: backstory.value,
      topic_preferences: prefs,
    };
    if (persona) {
      params.persona_id = persona.id;
      params.model = model.value.trim();
    } else if (model.value.trim()) {
      params.model = model.value.trim();
    }
    busy(save, err, async () => {
      const method = persona ? "persona.update" : "persona.create";
      const result = await ctx.rpc.call(method, params);
      announce(persona ? `Saved ${result.persona.name}.` : `Created ${result.persona.name}.`);
      done(result.persona);
    });
  });
  setTimeout(() => name.focus(), 0);
  return form;
}

function readFile(file, how) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    if (how === "text") reader.readAsText(file);
    else reader.readAsDataURL(file);
  });
}

/** A card file as persona.import_card takes it: the JSON object, or the PNG as base64. */
export async function cardFromFile(file) {
  const lower = file.name.toLowerCase();
  if (lower.endsWith(".json") || file.type.includes("json")) {
    const text = await readFile(file, "text");
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`${file.name} is not valid JSON (${e.message})`);
    }
  }
  if (lower.endsWith(".png") || file.type === "image/png") {
    const url = await readFile(file, "dataURL");
    return url.slice(url.indexOf(",") + 1);
  }
  throw new Error(`${file.name}: a character card is a PNG or a JSON file`);
}

function importZone(ctx, onImported) {
  const err = errorLine();
  const status = h("p", { class: "status", role: "status" });
  const input = h("input", { type: "file", accept: ".png,.json,image/png,application/json", class: "file" });
  const zone = h(
    "div",
    { class: "dropzone" },
    h("p", {}, "Drop a character card here (PNG or JSON), or choose a file."),
    field("Import a character card", input),
    status,
    err,
  );
  const importFile = async (file) => {
    hideError(err);
    status.textContent = `Importing ${file.name}…`;
    try {
      const card = await cardFromFile(file);
      const result = await ctx.rpc.call("persona.import_card", { card });
      const persona = result.persona || result;
      status.textContent = `Imported ${persona.name}.`;
      announce(`Imported ${persona.name}.`);
      onImported(persona);
    } catch (e) {
      status.textContent = "";
      showError(err, e);
    } finally {
      input.value = "";
    }
  };
  input.addEventListener("change", () => {
    if (input.files.length) importFile(input.files[0]);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) importFile(file);
  });
  return zone;
}

export function createPanel(ctx) {
  const err = errorLine();
  const list = h("div", { class: "cards", "aria-live": "polite", "aria-busy": "false" });
  const formSlot = h("div", { class: "form-slot" });
  const newButton = h("button", { type: "button", class: "primary" }, "New persona");

  // A form's answer closes that form only: while a create was on its way, the list may
  // already show the new persona (a persona.state event refreshes it) and its Edit may
  // have put another form in the slot, which the late answer must leave open.
  const closeForm = (form, saved) => {
    const shown = form.isConnected;
    if (shown) {
      clear(formSlot);
      newButton.hidden = false;
    }
    if (saved) {
      if (shown) ctx.selectPersona(saved.id);
      refresh();
    }
  };
  const openForm = (persona) => {
    newButton.hidden = true;
    const form = personaForm(ctx, persona, (saved) => closeForm(form, saved));
    clear(formSlot, form);
  };
  newButton.addEventListener("click", () => openForm(null));

  async function refresh() {
    hideError(err);
    list.setAttribute("aria-busy", "true");
    try {
      const personas = await ctx.refreshPersonas();
      const statuses = await Promise.all(
        personas.map((p) => ctx.rpc.call("persona.status", { persona_id: p.id }).catch(() => null)),
      );
      clear(list, personas.map((p, i) => personaCard(ctx, p, statuses[i], openForm)));
      if (!personas.length) list.append(h("p", {}, "No personas yet."));
    } catch (e) {
      showError(err, e);
    } finally {
      list.setAttribute("aria-busy", "false");
    }
  }

  const element = h(
    "section",
    { class: "panel", "aria-labelledby": "personas-title" },
    h("h2", { id: "personas-title", tabindex: -1 }, "Personas"),
    err,
    h("div", { class: "toolbar" }, newButton, h("button", { type: "button", onclick: () => refresh() }, "Refresh")),
    formSlot,
    list,
    h("h3", {}, "Import a character card"),
    importZone(ctx, (persona) => {
      ctx.selectPersona(persona.id);
      refresh();
    }),
  );
  return { id: "personas", title: "Personas", element, show: refresh };
}

// The console's entry point: connect to the WebSocket door (asking for a token when the
// server requires one), then show one panel at a time, chosen by the URL's hash.

import { RpcClient, closeReason } from "./rpc.js";
import { Context } from "./context.js";
import { h, clear, announce, field, errorText } from "./ui.js";
import * as personas from "./panels/personas.js";
import * as chat from "./panels/chat.js";
import * as memories from "./panels/memories.js";
import * as prune from "./panels/prune.js";
import * as relationships from "./panels/relationships.js";
import * as simulations from "./panels/simulations.js";
import * as system from "./panels/system.js";

const MODULES = [personas, chat, memories, prune, relationships, simulations, system];
const TOKEN_KEY = "persona-mcp.console.token";
const TOPICS = ["persona.state", "simulation.turn"];
const RETRY_SECONDS = [1, 2, 4, 8, 15, 30];

const statusEl = document.getElementById("connection");
const problemEl = document.getElementById("problem");
const loginSlot = document.getElementById("login");
const panelsEl = document.getElementById("panels");
const navEl = document.getElementById("nav");
const personaSelect = document.getElementById("persona-select");
const signOut = document.getElementById("sign-out");
const personaPick = document.getElementById("persona-pick");

let rpc = null;
let ctx = null;
let panels = [];
let current = null;
let retries = 0;
let retryTimer = null;

function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/mcp`;
}

function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
}

function setStatus(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
}

function setProblem(text) {
  problemEl.hidden = !text;
  problemEl.textContent = text || "";
}

/**
 * Why a WebSocket connection was refused. Browsers hide the handshake's HTTP status, so
 * ask the same edge over plain HTTP: it answers 401 with its reason when a token is
 * missing, unknown or revoked.
 */
async function whyRefused(token) {
  try {
    const response = await fetch("/mcp", {
      method: "OPTIONS",
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: "no-store",
    });
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      return { login: true, message: body.error || "The server requires a token" };
    }
    if (response.status === 503) {
      return { login: false, message: "The server has too many connections (MAX_CONNECTIONS)" };
    }
    return { login: false, message: `The server answers, but refused the WebSocket connection (HTTP ${response.status})` };
  } catch {
    return { login: false, message: "The server cannot be reached" };
  }
}

function showLogin(message) {
  setStatus("Sign in needed", "login");
  signOut.hidden = true;
  const token = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: false });
  const remember = h("input", { type: "checkbox" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const reason = h("p", { class: "error", role: "alert" }, message);
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, "Sign in"),
    h("p", {}, "This server requires a token. Create one with ", h("code", {}, "persona-mcp token create --user NAME"), " and paste the last line it prints."),
    reason,
    field("Token", token),
    h("label", { class: "check" }, remember, " Remember on this device"),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = token.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    if (remember.checked) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
    clear(loginSlot);
    loginSlot.hidden = true;
    connect();
  });
  panelsEl.hidden = true;
  navEl.hidden = true;
  personaPick.hidden = true;
  clear(loginSlot, form);
  loginSlot.hidden = false;
  token.focus();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

async function connect() {
  clearTimeout(retryTimer);
  const token = savedToken();
  if (!rpc) {
    rpc = new RpcClient(wsUrl(), token);
    rpc.onClose(lost);
  }
  rpc.token = token;
  setStatus("Connecting…", "connecting");
  try {
    await rpc.connect();
  } catch {
    const why = await whyRefused(token);
    if (why.login) {
      showLogin(why.message);
      return;
    }
    retryLater(why.message);
    return;
  }
  retries = 0;
  setProblem(null);
  setStatus("Connected", "open");
  signOut.hidden = !token;
  try {
    await rpc.call("events.subscribe", { topics: TOPICS });
  } catch (e) {
    setProblem(errorText(e));
  }
  if (!ctx) build();
  try {
    await ctx.refreshPersonas();
  } catch (e) {
    setProblem(errorText(e));
  }
  route();
}

function retryLater(message) {
  const wait = RETRY_SECONDS[Math.min(retries, RETRY_SECONDS.length - 1)];
  retries += 1;
  setStatus("Disconnected", "closed");
  const again = h("button", { type: "button", class: "small" }, "Reconnect now");
  again.addEventListener("click", connect);
  clear(problemEl, `${message}. Trying again in ${wait} s. `, again);
  problemEl.hidden = false;
  retryTimer = setTimeout(connect, wait * 1000);
}

function lost(event) {
  retryLater(`Connection lost: ${closeReason(event.code)}`);
}

function build() {
  ctx = new Context(rpc);
  panels = MODULES.map((m) => m.createPanel(ctx));
  clear(
    navEl.querySelector("ul"),
    panels.map((p) => h("li", {}, h("a", { href: `#${p.id}`, dataset: { panel: p.id } }, p.title))),
  );
  clear(panelsEl, panels.map((p) => p.element));
  for (const p of panels) p.element.hidden = true;
  ctx.addEventListener("personas", fillPersonaSelect);
  ctx.addEventListener("persona", () => {
    personaSelect.value = ctx.personaId || "";
  });
  personaSelect.addEventListener("change", () => ctx.selectPersona(personaSelect.value));
  let pending = null;
  rpc.on("persona.state", () => {
    // A chat or a change elsewhere moved a mood or the list: refresh, at most every 0.5 s.
    clearTimeout(pending);
    pending = setTimeout(() => {
      if (current && current.id === "personas") current.show();
      else ctx.refreshPersonas().catch((e) => setProblem(errorText(e)));
    }, 500);
  });
  window.addEventListener("hashchange", () => route(true));
}

function fillPersonaSelect() {
  clear(personaSelect, ctx.personas.map((p) => h("option", { value: p.id }, p.name)));
  personaSelect.value = ctx.personaId || "";
  personaSelect.disabled = !ctx.personas.length;
}

function route(moveFocus = false) {
  if (!panels.length) return;
  const id = location.hash.slice(1);
  const next = panels.find((p) => p.id === id) || panels[0];
  if (current && current !== next && current.hide) current.hide();
  current = next;
  navEl.hidden = false;
  panelsEl.hidden = false;
  personaPick.hidden = false;
  loginSlot.hidden = true;
  for (const p of panels) p.element.hidden = p !== next;
  for (const a of navEl.querySelectorAll("a")) {
    if (a.dataset.panel === next.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${next.title} · persona-mcp console`;
  Promise.resolve(next.show()).catch((e) => setProblem(errorText(e)));
  if (moveFocus) {
    const heading = next.element.querySelector("h2");
    if (heading) heading.focus();
    announce(`${next.title} panel`);
  }
}

signOut.addEventListener("click", () => {
  forgetToken();
  if (rpc) rpc.close();
  location.reload();
});

connect();

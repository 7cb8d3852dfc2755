// Small DOM helpers shared by the panels: element building, errors, announcements, formats.
// Text always goes in as text nodes (never innerHTML): memories and names are user data.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && !(el instanceof SVGElement) && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h("button", {type: "button", onclick}, "Save") */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The text of an error as a person should read it: the server's own message first. */
export function errorText(err) {
  if (!err) return "";
  const parts = [err.message || String(err)];
  const fields = err.data && Array.isArray(err.data.errors) ? err.data.errors : [];
  for (const f of fields) parts.push(`${f.field}: ${f.message}`);
  if (err.data && err.data.retry_after_seconds !== undefined) {
    parts.push(`retry after ${err.data.retry_after_seconds} s`);
  }
  if (err.data && err.data.limit) parts.push(`limit: ${err.data.limit}`);
  let text = parts.join(" — ");
  if (err.method && err.code !== null && err.code !== undefined) {
    text = `${err.method} failed: ${text} (error ${err.code})`;
  } else if (err.method) {
    text = `${err.method} failed: ${text}`;
  }
  return text;
}

/** Show an error in a panel's error line (role="alert": read out at once). */
export function showError(el, err) {
  el.hidden = false;
  el.textContent = errorText(err);
  if (err) console.error(err);
}

export function hideError(el) {
  el.hidden = true;
  el.textContent = "";
}

/** An error line for a panel; hidden until something fails. */
export function errorLine() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

let liveRegion = null;

/** A short polite announcement for screen readers (and the status bar). */
export function announce(text) {
  if (!liveRegion) liveRegion = document.getElementById("announcer");
  if (!liveRegion) return;
  liveRegion.textContent = "";
  // A fresh text node after a tick makes repeated identical messages be read again.
  setTimeout(() => {
    liveRegion.textContent = text;
  }, 30);
}

/** Run `work` with the button disabled and marked busy; errors go to `errEl`. */
export async function busy(button, errEl, work) {
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  if (errEl) hideError(errEl);
  try {
    return await work();
  } catch (err) {
    if (errEl) showError(errEl, err);
    else throw err;
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}

export function fmtDate(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function fmtNum(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toFixed(digits);
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${mm} min`;
  if (mm) return `${mm} min ${s % 60} s`;
  return `${s} s`;
}

/** A labelled field: <div class="field"><label for=id>text</label>control</div>. */
let fieldCount = 0;
export function field(labelText, control, hint = null) {
  fieldCount += 1;
  if (!control.id) control.id = `f${fieldCount}`;
  const parts = [h("label", { for: control.id }, labelText), control];
  if (hint) {
    const hintEl = h("small", { id: `${control.id}-hint`, class: "hint" }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return h("div", { class: "field" }, parts);
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

/** <table> with a caption, headers and rows of cells (nodes or text). Each cell carries
 * its column's header as data-label, which narrow screens show beside it. */
export function table(caption, headers, rows, props = {}) {
  for (const row of rows) {
    [...row.children].forEach((cell, i) => {
      if (headers[i]) cell.dataset.label = headers[i];
    });
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      props,
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

/** A two-step confirmation: the first press asks, the second does it. */
export function confirmButton(label, question, onConfirm, props = {}) {
  const wrap = h("span", { class: "confirm" });
  const first = h("button", { type: "button", class: "danger", ...props }, label);
  const ask = () => {
    const yes = h("button", { type: "button", class: "danger" }, `Yes, ${label.toLowerCase()}`);
    const no = h("button", { type: "button" }, "Cancel");
    const prompt = h("span", { role: "group", "aria-label": question }, h("span", { class: "question" }, question), " ", yes, " ", no);
    no.addEventListener("click", () => {
      clear(wrap, first);
      first.focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      no.disabled = true;
      try {
        await onConfirm();
      } finally {
        if (wrap.isConnected) clear(wrap, first);
      }
    });
    clear(wrap, prompt);
    yes.focus();
  };
  first.addEventListener("click", ask);
  wrap.append(first);
  return wrap;
}

// What every page of the console shares: the language, the labels, building elements
// (text is always set as text, never parsed as HTML), calling the API, formatting.
import { LABELS } from "./i18n.js";

const LANG_KEY = "poskit.lang";
const CSRF_KEY = "poskit.csrf";

export const state = {
  lang: localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh",
  user: null,
};

export function setLang(lang) {
  state.lang = lang === "en" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, state.lang);
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
}

export function setCsrf(token) {
  if (token) {
    sessionStorage.setItem(CSRF_KEY, token);
  } else {
    sessionStorage.removeItem(CSRF_KEY);
  }
}

export function hasCsrf() {
  return Boolean(sessionStorage.getItem(CSRF_KEY));
}

/** The label `key` in the current language, `{name}` replaced from `vars`. */
export function t(key, vars) {
  let text = LABELS[state.lang][key] ?? LABELS.zh[key] ?? key;
  for (const [name, value] of Object.entries(vars || {})) {
    text = text.replace(`{${name}}`, String(value));
  }
  return text;
}

/** A label for a value of the API (`step_reversal`), or the value itself. */
export function tv(prefix, value) {
  const key = `${prefix}_${value}`;
  return LABELS[state.lang][key] ?? String(value);
}

/** The steps of a dispute or of reconciliation a row of the ledger may be, by its E-code. */
const E_STEPS = { E23: "chargeback", E24: "representment", E25: "second_chargeback", E32: "credit_adjustment" };

/**
 * A transaction's kind in the language in use: the API's words (from the domain's table),
 * or the step its E-code is.
 */
export function kindName(ev) {
  const named = (ev.kind_name || {})[state.lang];
  if (named) {
    return named;
  }
  return E_STEPS[ev.mti] ? tv("step", E_STEPS[ev.mti]) : ev.kind || ev.mti || "—";
}

/** Fills the elements marked `data-l` (the static parts of a page) with their labels. */
export function applyLabels(root) {
  for (const node of root.querySelectorAll("[data-l]")) {
    node.textContent = t(node.dataset.l);
  }
  for (const node of root.querySelectorAll("[data-l-placeholder]")) {
    node.placeholder = t(node.dataset.lPlaceholder);
  }
}

/**
 * An element: `attrs` are attributes (`class`, `href`, `data-x`, ...), functions under
 * `on*` are listeners; `children` are nodes or strings (added as text).
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An API call that did not answer 2xx: its status and the API's error code and message. */
export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

/**
 * Calls the API with the session cookie; every write carries the session's CSRF token.
 * A 401 on the console sends the browser to the login page.
 */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = sessionStorage.getItem(CSRF_KEY) || "";
  }
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && document.body.dataset.page === "console") {
      setCsrf(null);
      location.replace("/login");
    }
    throw new ApiFailure(response.status, error.code, error.message);
  }
  return data;
}

/** Fen as yuan: 1230 → "¥12.30". */
export function yuan(fen) {
  if (fen === undefined || fen === null) {
    return "—";
  }
  const n = Number(fen);
  return `¥${Math.floor(n / 100)}.${String(n % 100).padStart(2, "0")}`;
}

/** Milliseconds since the epoch as a local date and time. */
export function when(ms) {
  if (ms === undefined || ms === null) {
    return "—";
  }
  return new Date(ms).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", {
    hour12: false,
  });
}

export function percent(rate) {
  return `${(Number(rate) * 100).toFixed(1)}%`;
}

/** "YYYYMMDD" as "YYYY-MM-DD". */
export function day(yyyymmdd) {
  const s = String(yyyymmdd || "");
  return s.length === 8 ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6)}` : s || "—";
}

/** A definition list of `[label, value]` rows (rows whose value is empty are left out). */
export function facts(rows, cls) {
  const list = el("dl", { class: cls ? `facts ${cls}` : "facts" });
  for (const [label, value] of rows) {
    if (value === undefined || value === null || value === "") {
      continue;
    }
    list.append(el("dt", {}, label), el("dd", {}, value));
  }
  return list;
}

/**
 * A table that shows each row as a card on a phone's screen (console.css, `table.stack`):
 * every cell is labelled with its column's heading. Called again after rows are added.
 */
export function stackTable(table) {
  table.classList.add("stack");
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => {
      cell.dataset.label = heads[i] || "";
    });
  }
  return table;
}

/** A link to the explanation of `code`. */
export function codeLink(code) {
  return el("a", { class: "code", href: `#/explain/${encodeURIComponent(code)}` }, code);
}

/** A message for a failed call, in the current language, with the API's own words. */
export function failure(error) {
  const known = {
    401: "error_unauthorized",
    403: "error_forbidden",
    404: "error_not_found",
    429: "login_locked",
  };
  const label = t(known[error.status] || "error_generic");
  const detail = error instanceof ApiFailure ? error.message : String(error);
  return el("p", { class: "error", role: "alert" }, `${label} (${detail})`);
}

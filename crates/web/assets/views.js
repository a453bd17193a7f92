// The console's pages, one function each: given the hash route's arguments and query, they
// ask the API and answer the page's content. A search puts its fields in the hash, so that
// a reload, a language switch or a shared link shows the same answer.
import { api, codeLink, day, el, facts, failure, kindName, percent, stackTable, state, t, tv, when, yuan } from "./core.js";
import { codeChart } from "./chart.js";

function go(route, params) {
  const query = new URLSearchParams(params).toString();
  location.hash = query ? `#/${route}?${query}` : `#/${route}`;
}

function field(id, label, attrs) {
  return el("label", { class: "field" }, el("span", {}, t(label)), el("input", { id, name: id, ...attrs }));
}

// ---- Was the customer charged? ----------------------------------------------------------

const LOOKUP_FIELDS = ["rrn", "tid", "trace", "auth_code", "last4", "amount", "date"];

function lookupForm(params) {
  const value = (name) => params.get(name) || "";
  const group = (legend, ...fields) => el("fieldset", { class: "group" }, el("legend", {}, t(legend)), ...fields);
  const form = el(
    "form",
    { id: "lookup-form", class: "card", autocomplete: "off" },
    el("h1", {}, t("lookup_title")),
    el("p", { class: "hint" }, t("lookup_hint")),
    el(
      "div",
      { class: "groups" },
      group("by_rrn", field("f-rrn", "rrn", { inputmode: "numeric", value: value("rrn") })),
      group(
        "by_trace",
        field("f-tid", "tid", { value: value("tid") }),
        field("f-trace", "trace", { inputmode: "numeric", value: value("trace") }),
      ),
      group("by_auth", field("f-auth_code", "auth_code", { value: value("auth_code") })),
      group(
        "by_card",
        field("f-last4", "last4", { inputmode: "numeric", maxlength: 4, value: value("last4") }),
        field("f-amount", "amount", { inputmode: "decimal", value: value("amount") }),
        field("f-date", "date", { type: "date", value: day(value("date")).replace("—", "") }),
      ),
    ),
    el("button", { type: "submit", id: "lookup-submit", class: "primary" }, t("search")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = {};
    for (const name of LOOKUP_FIELDS) {
      const text = form.querySelector(`#f-${name}`).value.trim();
      if (text) {
        query[name] = name === "date" ? text.replaceAll("-", "") : text;
      }
    }
    if (Object.keys(query).length === 0) {
      form.querySelector(".error")?.remove();
      form.append(el("p", { class: "error", role: "alert" }, t("lookup_need")));
      return;
    }
    go("lookup", query);
  });
  return form;
}

export async function lookupView(args, params) {
  const page = el("section", { class: "page" }, lookupForm(params));
  const query = new URLSearchParams();
  for (const name of LOOKUP_FIELDS) {
    if (params.get(name)) {
      query.set(name, params.get(name));
    }
  }
  if ([...query.keys()].length === 0) {
    return page;
  }
  try {
    const found = await api("GET", `/api/v1/lookup?${query}`);
    const matches = found.matches || [];
    const results = el(
      "div",
      { id: "lookup-results", "data-focus": "" },
      el("p", { class: "count" }, matches.length ? t("matches_n", { n: matches.length }) : t("no_matches")),
    );
    results.append(...matches.map(matchCard));
    page.append(results);
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

function matchCard(match) {
  const v = match.verdict || {};
  const lang = state.lang;
  const x = match.transaction || {};
  return el(
    "article",
    { class: "card match" },
    el(
      "div",
      { class: `verdict verdict-${v.verdict}`, "data-verdict": v.verdict },
      el("strong", { class: "verdict-text" }, v[lang]),
    ),
    facts([
      [t("next_step"), (v.next_step || {})[lang]],
      [t("say_to_customer"), (v.say_to_customer || {})[lang]],
    ]),
    facts(
      [
        [t("time"), `${day(x.date)} ${x.time || ""}`],
        [t("amount"), yuan(x.amount_fen)],
        [t("card"), x.pan],
        [t("kind"), x.kind],
        [t("tid"), x.tid],
        [t("merchant"), x.mid],
        [t("rrn"), x.rrn],
        [t("auth_code"), x.auth_code],
        [t("code"), x.code ? codeLink(x.code) : ""],
        [t("state"), x.state],
        [t("matched_on"), (match.matched_on || []).join(", ")],
      ],
      "compact",
    ),
    el("details", { class: "because" }, el("summary", {}, t("because")), el("p", { class: "because-text" }, (v.because || {})[lang] || "")),
    el("h3", {}, t("chain")),
    el("ol", { class: "chain" }, (match.chain || []).map(chainStep)),
  );
}

function stepTime(step) {
  if (step.date) {
    return `${day(step.date)} ${step.time || ""}`;
  }
  const ms = step.received_ms ?? step.settled_ms;
  return ms ? when(ms) : "";
}

function chainStep(step) {
  const muted = (text) => (text ? el("span", { class: "muted" }, text) : null);
  return el(
    "li",
    { "data-step": step.step },
    el("span", { class: "step" }, tv("step", step.step)),
    step.code ? codeLink(step.code) : null,
    step.amount_fen !== undefined ? el("span", {}, yuan(step.amount_fen)) : null,
    muted(stepTime(step)),
    muted(step.state),
    muted(step.clearing_day ? day(step.clearing_day) : ""),
    muted(step.class ? String(step.class) : ""),
  );
}

// ---- What does a code mean? -------------------------------------------------------------

export async function explainView(args, params) {
  const asked = args[0] || params.get("q") || "";
  const input = el("input", { id: "explain-input", name: "q", value: asked, autocomplete: "off" });
  const form = el(
    "form",
    { id: "explain-form", class: "card" },
    el("h1", {}, t("explain_title")),
    el("p", { class: "hint" }, t("explain_hint")),
    el("label", { class: "field" }, el("span", {}, t("code_or_words")), input),
    el("button", { type: "submit", id: "explain-submit", class: "primary" }, t("explain")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (/^[0-9A-Za-z]{2}$/.test(text)) {
      location.hash = `#/explain/${encodeURIComponent(text.toUpperCase())}`;
    } else if (text) {
      go("explain", { q: text });
    }
  });
  const page = el("section", { class: "page" }, form);
  if (!asked) {
    return page;
  }
  try {
    if (args[0]) {
      const lang = state.lang;
      const [entry, labels] = await Promise.all([
        api("GET", `/api/v1/explain/${encodeURIComponent(asked)}?lang=${lang}`),
        labelsFor(lang),
      ]);
      page.append(codeCard(entry, labels));
    } else {
      const found = await api("GET", `/api/v1/search?q=${encodeURIComponent(asked)}&lang=${state.lang}`);
      page.append(hitsCard(found.hits || []));
    }
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

function list(items, cls) {
  return el("ul", { class: cls }, (items || []).map((item) => el("li", {}, item)));
}

/** The catalog's words for the values of an explanation, by language (asked once each). */
const catalogLabels = {};

async function labelsFor(lang) {
  catalogLabels[lang] ??= await api("GET", `/api/v1/catalog/labels?lang=${lang}`);
  return catalogLabels[lang];
}

function codeCard(entry, labels) {
  const meaning = state.lang === "zh" ? entry.meaning_zh : entry.meaning_en;
  const word = (kind, value) => (labels[kind] || {})[value] || value;
  return el(
    "article",
    { class: "card explanation", id: "explanation", "data-code": entry.code },
    el("h2", {}, el("span", { class: "big-code" }, entry.code), " ", el("span", { id: "meaning" }, meaning)),
    facts([
      [t("class"), `${entry.class} ${word("class", entry.class)}`],
      [t("money_moved"), word("money_moved", entry.money_moved)],
      [t("category"), word("category", entry.category)],
      [t("actor"), word("actor", entry.actor)],
      [t("retry"), word("retry", entry.retry)],
    ]),
    el("h3", {}, t("causes")),
    list(entry.causes),
    el("h3", {}, t("steps")),
    el("ol", {}, (entry.steps || []).map((s) => el("li", {}, s))),
    el("h3", {}, t("customer")),
    el("blockquote", {}, entry.customer),
  );
}

function hitsCard(hits) {
  const card = el("article", { class: "card", id: "search-hits" }, el("h2", {}, t("search_results")));
  if (hits.length === 0) {
    card.append(el("p", {}, t("no_hits")));
  }
  for (const hit of hits) {
    if (hit.kind === "code") {
      card.append(el("p", { class: "hit" }, codeLink(hit.code), " ", hit.meaning));
      continue;
    }
    card.append(
      el(
        "details",
        { class: "hit symptom" },
        el("summary", {}, `${t("symptom")}: ${hit.title}`),
        el("ol", {}, (hit.steps || []).map((s) => el("li", {}, s))),
        facts([
          [t("customer"), hit.customer],
          [t("related_codes"), (hit.related || []).length ? el("span", {}, hit.related.map((c) => [codeLink(c), " "])) : ""],
        ]),
      ),
    );
  }
  return card;
}

// ---- Terminals --------------------------------------------------------------------------

/** How long ago `ms` was, in the largest whole unit (minutes, hours or days). */
export function age(ms) {
  if (ms === undefined || ms === null) {
    return "—";
  }
  const minutes = Math.floor(Number(ms) / 60_000);
  if (minutes < 60) {
    return t("age_minutes", { n: minutes });
  }
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? t("age_hours", { n: hours }) : t("age_days", { n: Math.floor(hours / 24) });
}

/** A terminal's keys: when they were last exchanged and how old they are. */
function keysText(keys) {
  if (!keys || !keys.exchanged_ms) {
    return t("never");
  }
  return `${when(keys.exchanged_ms)} (${age(keys.age_ms)})`;
}

/** The codes of `failures` (`{code: n}`), each a link to its explanation. */
function failureCodes(failures) {
  const codes = Object.entries(failures || {}).sort((a, b) => b[1] - a[1]);
  if (codes.length === 0) {
    return el("span", { class: "muted" }, t("none"));
  }
  return el("span", { class: "codes" }, codes.map(([code, n]) => [codeLink(code), `×${n} `]));
}

const TERMINALS_PAGE = 100;

export async function terminalsView(args, params) {
  const page = el("section", { class: "page" }, el("h1", {}, t("terminals_title")));
  const after = params.get("after");
  try {
    const query = new URLSearchParams({ limit: String(TERMINALS_PAGE) });
    if (after) {
      query.set("after", after);
    }
    const found = await api("GET", `/api/v1/terminals?${query}`);
    const rows = found.terminals || [];
    if (rows.length === 0) {
      page.append(el("p", {}, t("no_terminals")));
      return page;
    }
    const heads = [t("tid"), t("merchant"), t("status"), t("batch"), t("keys_exchanged"), t("failures_hour")];
    const body = rows.map((row) =>
      el(
        "tr",
        { "data-tid": row.tid },
        el("td", {}, el("a", { href: `#/terminal/${encodeURIComponent(row.tid)}`, class: "tid" }, row.tid)),
        el("td", {}, row.mid),
        el("td", {}, tv("tstatus", row.status)),
        el("td", {}, row.batch),
        el("td", { class: "keys" }, keysText(row.keys)),
        el("td", { class: "failures" }, failureCodes((row.last_hour || {}).failures)),
      ),
    );
    const head = el("tr", {}, heads.map((h) => el("th", {}, h)));
    const table = el("table", { id: "terminals" }, el("thead", {}, head), el("tbody", {}, body));
    page.append(el("div", { class: "table-wrap" }, stackTable(table)));
    if (found.next) {
      page.append(el("p", {}, el("a", { id: "terminals-next", href: `#/terminals?after=${encodeURIComponent(found.next)}` }, t("next_page"))));
    }
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

function windowCard(label, w, id) {
  const total = Object.values(w.by_code || {}).reduce((a, b) => a + Number(b), 0);
  const card = el(
    "article",
    { class: "card window", id },
    el("h2", {}, label),
    facts([
      [t("attempts"), w.attempts],
      [t("approved"), w.approved],
      [t("approval_rate"), w.attempts ? percent(w.approval_rate) : "—"],
      [t("first_attempt_rate"), w.first_attempts ? percent(w.first_attempt_approval_rate) : "—"],
      [t("timeouts"), w.timeouts],
      [t("reversals"), w.reversals],
      [t("mac_errors"), w.mac_errors],
      [t("last_seen"), w.last_seen_ms ? when(w.last_seen_ms) : "—"],
    ]),
    el("h3", {}, t("by_code")),
  );
  if (total === 0) {
    card.append(el("p", { class: "muted" }, t("no_data")));
  } else {
    const title = t("chart_of", { window: label, n: total });
    card.append(codeChart(w.by_code, title, (code) => `#/explain/${encodeURIComponent(code)}`));
  }
  return card;
}

export async function terminalView(args) {
  const tid = args[0] || "";
  const page = el("section", { class: "page" }, el("a", { href: "#/terminals", class: "back" }, t("back_terminals")));
  try {
    const found = await api("GET", `/api/v1/terminals/${encodeURIComponent(tid)}`);
    const row = found.terminal;
    page.append(
      el("h1", {}, `${t("tid")} ${row.tid}`),
      facts([
        [t("merchant"), row.mid],
        [t("status"), tv("tstatus", row.status)],
        [t("batch"), row.batch],
        [t("keys_exchanged"), el("span", { id: "keys-age" }, keysText(row.keys))],
      ]),
      failuresCard(found.recent_failures || []),
      el(
        "div",
        { class: "windows" },
        windowCard(t("last_hour"), found.last_hour, "last-hour"),
        windowCard(t("last_day"), found.last_day, "last-day"),
      ),
    );
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

/** A terminal's newest failures: when, what, the code and its meaning in this language. */
function failuresCard(failures) {
  const card = el("article", { class: "card", id: "recent-failures" }, el("h2", {}, t("recent_failures")));
  if (failures.length === 0) {
    card.append(el("p", { class: "muted" }, t("no_failures")));
    return card;
  }
  card.append(
    el(
      "ol",
      { class: "events" },
      failures.map((f) =>
        el(
          "li",
          { "data-code": f.code.code },
          codeLink(f.code.code),
          " ",
          el("span", { class: "meaning" }, (f.code.meaning || {})[state.lang] || ""),
          el("br"),
          el("small", { class: "muted" }, [when(f.at_ms), kindName(f), f.reversal ? t("reversal") : "", yuan(f.amount_fen), f.pan || ""].filter(Boolean).join(" · ")),
        ),
      ),
    ),
  );
  return card;
}

// ---- Alerts -----------------------------------------------------------------------------

function mayAck() {
  return state.user && (state.user.role === "operator" || state.user.role === "admin");
}

function diagnosisOf(alert) {
  const causes = ((alert.diagnosis || {})[state.lang] || []).filter(Boolean);
  if (causes.length === 0) {
    return el("p", { class: "muted" }, t("no_diagnosis"));
  }
  return el(
    "ol",
    { class: "diagnosis" },
    causes.map((cause) =>
      el(
        "li",
        {},
        el("strong", {}, cause.label),
        ` (${t("likelihood")} ${percent(cause.likelihood)})`,
        list(cause.evidence, "evidence"),
        el("ol", { class: "steps" }, (cause.steps || []).map((s) => el("li", {}, s))),
      ),
    ),
  );
}

function alertCard(alert, reload) {
  const title = state.lang === "zh" ? alert.title_zh : alert.title_en;
  const status = alert.resolved_ms ? t("resolved") : t("firing");
  const card = el(
    "article",
    { class: `card alert severity-${alert.severity}`, "data-alert": alert.id },
    el(
      "h2",
      {},
      el("span", { class: `badge badge-${alert.severity}` }, tv("severity", alert.severity)),
      " ",
      title,
    ),
    facts([
      [tv("scope", alert.scope), alert.subject],
      [t("detail"), alert.detail],
      [t("fired"), when(alert.fired_ms)],
      [t("status"), alert.resolved_ms ? `${status} ${when(alert.resolved_ms)}` : status],
      [t("acked_by"), alert.acked_by ? `${alert.acked_by} ${when(alert.acked_ms)}` : ""],
    ]),
    el("h3", {}, t("diagnosis")),
    diagnosisOf(alert),
  );
  if (alert.acked_by) {
    card.append(el("p", { class: "acked" }, `✓ ${t("acked")}`));
  } else if (mayAck()) {
    const button = el("button", { type: "button", class: "primary ack", "data-ack": alert.id }, t("ack"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("POST", `/api/v1/alerts/${alert.id}/ack`);
        reload();
      } catch (error) {
        button.disabled = false;
        card.append(failure(error));
      }
    });
    card.append(button);
  }
  return card;
}

export async function alertsView(args, params, reload) {
  const all = params.get("all") === "true";
  const toggle = el("input", { type: "checkbox", id: "show-resolved", checked: all });
  toggle.addEventListener("change", () => go("alerts", toggle.checked ? { all: "true" } : {}));
  const page = el(
    "section",
    { class: "page" },
    el("h1", {}, t("alerts_title")),
    el("label", { class: "check" }, toggle, " ", t("show_resolved")),
  );
  try {
    const alerts = (await api("GET", `/api/v1/alerts?limit=1000${all ? "&all=true" : ""}`)).alerts || [];
    if (alerts.length === 0) {
      page.append(el("p", {}, t("no_alerts")));
    }
    page.append(...alerts.map((a) => alertCard(a, reload)));
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

// The operations pages: reconciliation's breaks by day, disputes with their deadlines (and,
// for operators and admins, their steps), and live activity. Every word about a code or a
// break class comes from the API (the catalog, `breaks.toml`) in the language in use; only
// the labels around them are the console's own (i18n.js).
import { api, codeLink, day, el, facts, failure, kindName, stackTable, state, t, tv, when, yuan } from "./core.js";

/** The catalog's words for values (`break_class`, ...), by language (asked once each). */
const catalogLabels = {};

async function labelsFor(lang) {
  catalogLabels[lang] ??= await api("GET", `/api/v1/catalog/labels?lang=${lang}`);
  return catalogLabels[lang];
}

function mayAct() {
  return state.user && (state.user.role === "operator" || state.user.role === "admin");
}

function rrnLink(rrn) {
  return rrn ? el("a", { href: `#/lookup?rrn=${encodeURIComponent(rrn)}`, class: "rrn" }, rrn) : "—";
}

// ---- Reconciliation breaks --------------------------------------------------------------

function runsCard(runs, shown) {
  const items = runs.map((run) =>
    el(
      "li",
      { "data-day": run.day, class: run.day === shown ? "current" : "" },
      el("a", { href: `#/breaks/${run.day}` }, day(run.day)),
      " ",
      el("span", { class: run.balanced ? "badge badge-ok" : "badge badge-warning" }, run.balanced ? t("balanced") : t("unbalanced")),
      " ",
      el("small", { class: "muted" }, `${tv("run", run.status)} · ${t("matched_n", { n: run.matched })} · ${t("breaks_n", { n: run.breaks })}`),
    ),
  );
  return el("nav", { class: "card runs", id: "recon-runs" }, el("h2", {}, t("recon_runs")), el("ul", { class: "plain" }, items));
}

function breakCard(b, labels) {
  const lang = state.lang;
  const name = (labels.break_class || {})[b.class] || b.class;
  return el(
    "article",
    { class: `card break priority-${b.priority}`, "data-break": b.id, "data-class": b.class },
    el("h2", {}, el("span", { class: "badge badge-class" }, b.class), " ", el("span", { class: "break-name" }, name)),
    facts([
      [t("amount"), yuan(b.amount_fen)],
      [t("rrn"), rrnLink(b.rrn)],
      [t("priority"), `P${b.priority}`],
      [t("status"), tv("bstatus", b.status)],
      [t("break_action"), tv("baction", b.action)],
      [t("found_on"), day(b.found_on)],
      [t("fields_differing"), (b.fields_differing || []).join(", ")],
      [t("resolution"), b.resolution || ""],
    ]),
    el("h3", {}, t("what_to_do")),
    el("p", { class: "advice" }, (b.advice || {})[lang] || ""),
    el("h3", {}, t("say_to_customer")),
    el("blockquote", { class: "customer" }, (labels.break_customer || {})[b.class] || ""),
  );
}

function classFilter(run, dayShown, classShown) {
  const select = el("select", { id: "break-class" }, el("option", { value: "" }, t("all_classes")));
  for (const [cls, n] of Object.entries(run.counts || {})) {
    select.append(el("option", { value: cls, selected: cls === classShown }, `${cls} (${n})`));
  }
  select.addEventListener("change", () => {
    const query = select.value ? `?class=${encodeURIComponent(select.value)}` : "";
    location.hash = `#/breaks/${dayShown}${query}`;
  });
  return el("label", { class: "field inline" }, el("span", {}, t("break_class")), select);
}

export async function breaksView(args, params) {
  const page = el("section", { class: "page" }, el("h1", {}, t("breaks_title")));
  try {
    const runs = (await api("GET", "/api/v1/recon/runs?limit=31")).runs || [];
    if (runs.length === 0) {
      page.append(el("p", {}, t("no_runs")));
      return page;
    }
    const shown = args[0] || runs[0].day;
    const cls = params.get("class") || "";
    const query = new URLSearchParams({ day: shown, limit: "1000" });
    if (cls) {
      query.set("class", cls);
    }
    const [found, labels] = await Promise.all([api("GET", `/api/v1/recon/breaks?${query}`), labelsFor(state.lang)]);
    const run = runs.find((r) => r.day === shown) || {};
    const list = el("div", { id: "breaks", "data-day": shown });
    const breaks = found.breaks || [];
    list.append(
      el("h2", {}, `${day(shown)} · ${t("breaks_n", { n: breaks.length })}`),
      ...(breaks.length ? breaks.map((b) => breakCard(b, labels)) : [el("p", { class: "muted" }, t("no_breaks"))]),
    );
    page.append(runsCard(runs, shown), classFilter(run, shown, cls), list);
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

// ---- Disputes ---------------------------------------------------------------------------

function isoDay(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, "0")}${String(d.getDate()).padStart(2, "0")}`;
}

function dueCell(d) {
  if (d.allowed.length === 0) {
    return el("td", { class: "due" }, day(isoDay(d.due_ms)), el("br"), el("small", {}, t("closed")));
  }
  const days = Math.ceil((d.due_ms - Date.now()) / 86_400_000);
  const left = days < 0 ? t("overdue") : t("days_left", { n: days });
  return el("td", { class: days < 0 ? "due overdue" : days <= 3 ? "due soon" : "due" }, day(isoDay(d.due_ms)), el("br"), el("small", {}, left));
}

/** The steps a case can take now, as buttons (operators and admins); represent asks for evidence. */
function actCell(d, reload) {
  const cell = el("td", { class: "wrap" });
  if (!mayAct() || d.allowed.length === 0) {
    cell.append((d.allowed || []).map((s) => tv("act", s)).join(", ") || "—");
    return cell;
  }
  const box = el("div", { class: "acts" });
  const evidence = d.allowed.includes("represent")
    ? el("input", { "data-evidence": d.id, placeholder: t("evidence_hint"), "aria-label": t("dispute_evidence") })
    : null;
  const buttons = d.allowed.map((step) => el("button", { type: "button", "data-act": d.id, "data-step": step }, tv("act", step)));
  const act = async (step) => {
    cell.querySelector(".error")?.remove();
    buttons.forEach((b) => (b.disabled = true));
    const body = { step };
    if (evidence && evidence.value.trim()) {
      body.evidence = evidence.value.trim();
    }
    try {
      await api("POST", `/api/v1/disputes/${d.id}/act`, body);
      reload();
    } catch (error) {
      buttons.forEach((b) => (b.disabled = false));
      cell.append(failure(error));
    }
  };
  buttons.forEach((b) => b.addEventListener("click", () => act(b.dataset.step)));
  box.append(...(evidence ? [evidence] : []), ...buttons);
  cell.append(box);
  return cell;
}

export async function disputesView(args, params, reload) {
  const page = el("section", { class: "page" }, el("h1", {}, t("disputes_title")));
  try {
    const rows = (await api("GET", "/api/v1/disputes?limit=1000")).disputes || [];
    if (rows.length === 0) {
      page.append(el("p", {}, t("no_disputes")));
      return page;
    }
    const heads = [t("due"), t("txn"), t("kind"), t("e_code"), t("reason_code"), t("state"), t("amount"), t("opened"), t("allowed")];
    const body = rows.map((d) =>
      el(
        "tr",
        { "data-dispute": d.id, "data-state": d.state },
        dueCell(d),
        // The ledger's id is the transaction's RRN: its lookup shows the chain.
        el("td", {}, el("a", { href: `#/lookup?rrn=${encodeURIComponent(d.txn_id)}` }, d.txn_id)),
        el("td", {}, tv("dkind", d.kind)),
        el("td", {}, d.e_code),
        el("td", {}, d.reason_code),
        el("td", { class: "state" }, tv("dstate", d.state)),
        el("td", {}, yuan(d.amount_fen)),
        el("td", {}, day(isoDay(d.opened_ms))),
        actCell(d, reload),
      ),
    );
    const head = el("tr", {}, heads.map((h) => el("th", {}, h)));
    const table = el("table", { id: "disputes" }, el("thead", {}, head), el("tbody", {}, body));
    page.append(el("div", { class: "table-wrap" }, stackTable(table)));
  } catch (error) {
    page.append(failure(error));
  }
  return page;
}

// ---- Live activity ----------------------------------------------------------------------

/** How often the page asks for what is new. */
const POLL_MS = 3_000;
/** Rows the page keeps, newest first. */
const ROWS_KEPT = 100;

function eventRow(ev, fresh) {
  const meaning = (ev.code.meaning || {})[state.lang] || "";
  const ok = ev.code.code === "00";
  return el(
    "tr",
    { "data-event": ev.id, "data-code": ev.code.code, class: fresh ? "fresh" : "" },
    el("td", {}, when(ev.at_ms)),
    el("td", {}, ev.tid || "—"),
    el("td", {}, `${kindName(ev)}${ev.reversal ? ` (${t("reversal")})` : ""}`),
    el("td", { class: "num" }, yuan(ev.amount_fen)),
    el("td", { class: "pan" }, ev.pan || "—"),
    el("td", { class: ok ? "code-ok" : "code-fail" }, codeLink(ev.code.code), " ", el("span", { class: "meaning" }, meaning)),
    el("td", {}, rrnLink(ev.rrn)),
  );
}

export async function activityView() {
  const status = el("p", { class: "muted live", id: "activity-status", "data-polls": "0" }, t("live_every", { n: POLL_MS / 1000 }));
  const page = el("section", { class: "page" }, el("h1", {}, t("activity_title")), status);
  const heads = [t("time"), t("tid"), t("kind"), t("amount"), t("card"), t("code"), t("rrn")];
  const body = el("tbody", {});
  const table = el("table", { id: "activity" }, el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))), body);
  const empty = el("p", { class: "muted", id: "activity-empty" }, t("no_activity"));
  let next = 0;
  const add = (events, fresh) => {
    body.prepend(...events.map((ev) => eventRow(ev, fresh)));
    while (body.children.length > ROWS_KEPT) {
      body.lastElementChild.remove();
    }
    empty.hidden = body.children.length > 0;
    stackTable(table);
  };
  try {
    const first = await api("GET", "/api/v1/activity?limit=50");
    next = first.next;
    add(first.events || [], false);
  } catch (error) {
    page.append(failure(error));
    return page;
  }
  page.append(empty, el("div", { class: "table-wrap" }, table));
  let polls = 0;
  const timer = setInterval(async () => {
    if (!page.isConnected) {
      clearInterval(timer); // another page is shown
      return;
    }
    try {
      const found = await api("GET", `/api/v1/activity?after=${next}&limit=200`);
      next = found.next;
      add(found.events || [], true);
      polls += 1;
      status.dataset.polls = String(polls);
      status.textContent = `${t("live_every", { n: POLL_MS / 1000 })} · ${t("updated_at", { time: when(Date.now()) })}`;
    } catch (error) {
      status.textContent = failure(error).textContent;
    }
  }, POLL_MS);
  return page;
}

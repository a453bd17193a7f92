// The console's entry point, for both pages: `/login` (the form, posted with fetch) and `/`
// (the signed-in console: a header, and the page of the hash route). The language is
// Chinese unless English was chosen (kept in localStorage); the session's CSRF token from
// the login answer is kept in sessionStorage and sent on every write.
import { api, applyLabels, el, failure, hasCsrf, setCsrf, setLang, state, t, tv, ApiFailure } from "./core.js";
import { alertsView, explainView, lookupView, terminalView, terminalsView } from "./views.js";
import { activityView, breaksView, disputesView } from "./ops.js";

const ROUTES = {
  lookup: lookupView,
  explain: explainView,
  terminals: terminalsView,
  terminal: terminalView,
  alerts: alertsView,
  breaks: breaksView,
  disputes: disputesView,
  activity: activityView,
};

/** Renders done so far: an answer that arrives after a newer render started is dropped. */
let renders = 0;

function wireLangButton(onSwitch) {
  const button = document.getElementById("lang");
  button.addEventListener("click", () => {
    setLang(state.lang === "zh" ? "en" : "zh");
    applyLabels(document);
    onSwitch();
  });
}

// ---- /login -----------------------------------------------------------------------------

function loginPage() {
  const form = document.getElementById("login-form");
  const message = document.getElementById("login-error");
  wireLangButton(() => {
    message.hidden = true;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.hidden = true;
    const name = document.getElementById("name").value.trim();
    const password = document.getElementById("password").value;
    try {
      const answer = await api("POST", "/api/v1/login", { name, password });
      setCsrf(answer.csrf);
      location.replace("/");
    } catch (error) {
      const key = error instanceof ApiFailure && error.status === 429 ? "login_locked" : "login_failed";
      message.textContent = error.status === 401 || error.status === 429 ? t(key) : failure(error).textContent;
      message.hidden = false;
    }
  });
}

// ---- / ----------------------------------------------------------------------------------

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...args] = path.split("/").map(decodeURIComponent);
  return { name: ROUTES[name] ? name : "lookup", args, params: new URLSearchParams(query || "") };
}

async function render() {
  const mine = ++renders;
  const { name, args, params } = parseHash();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.route === (name === "terminal" ? "terminals" : name));
  }
  const main = document.getElementById("view");
  main.replaceChildren(el("p", { class: "muted" }, t("loading")));
  let content;
  try {
    content = await ROUTES[name](args, params, render);
  } catch (error) {
    content = failure(error);
  }
  if (mine === renders) {
    main.replaceChildren(content);
    main.dataset.route = name;
    main.dataset.rendered = String(mine); // a page shown: what a browser test waits for
    // A search's answer is what was asked for: bring it into view (a phone shows little).
    main.querySelector("[data-focus]")?.scrollIntoView({ block: "start" });
  }
}

function showUser() {
  const who = document.getElementById("who");
  const user = state.user;
  const merchant = user.merchant ? ` ${user.merchant}` : "";
  who.textContent = `${user.name} · ${tv("role", user.role)}${merchant}`;
}

async function consolePage() {
  if (!hasCsrf()) {
    // A tab without the login's CSRF token could read but not act: log in here.
    location.replace("/login");
    return;
  }
  try {
    state.user = (await api("GET", "/api/v1/me")).user;
  } catch (error) {
    if (error.status !== 401) {
      document.getElementById("view").replaceChildren(failure(error));
    }
    return; // a 401 goes to /login
  }
  document.body.dataset.role = state.user.role;
  showUser();
  wireLangButton(() => {
    showUser();
    render();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/api/v1/logout");
    } finally {
      setCsrf(null);
      location.replace("/login");
    }
  });
  window.addEventListener("hashchange", render);
  await render();
}

setLang(state.lang);
applyLabels(document);
if (document.body.dataset.page === "login") {
  loginPage();
} else {
  consolePage();
}

//! The routes of `/api/v1/` and `/openapi.json`. Each asks the host's store, `recon`,
//! `monitor` or the catalog; a merchant user sees only its own merchant's terminals,
//! transactions, alerts and disputes (another merchant's is answered 404, as if it did not
//! exist); writes are audited.

use std::collections::HashSet;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use poskit_codes::{Catalog, Lang, Table};
use poskit_domain::AmountFen;
use poskit_domain::calendar::day_of_yyyymmdd;
use poskit_host::store::lookup::{self, TerminalRow};
use poskit_monitor::alerts;
use poskit_recon::lookup::{CardQuery, Query as Lookup};
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::auth::{self, Caller};
use crate::conns::{self, File};
use crate::page::{Cursor, Page};
use crate::users;
use crate::{ApiError, AppState, BODY_BYTES_MAX};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "poskit API",
        description = "Was the customer charged? What does a code mean? How is a terminal doing? Alerts, disputes."
    ),
    paths(
        auth::login,
        auth::logout,
        me,
        explain,
        lookup_txn,
        terminals,
        terminal,
        merchants,
        stats,
        alerts_list,
        alert_ack,
        disputes,
        crate::recon::dispute_act,
        crate::recon::recon_runs,
        crate::recon::recon_breaks,
        audit_trail,
        crate::activity::activity,
        crate::admin::faults_show,
        crate::admin::faults_set,
        crate::admin::faults_clear,
        crate::admin::merchant_add,
        crate::admin::merchant_update,
        crate::admin::terminal_add,
        crate::admin::terminal_update,
        crate::admin::users_list,
        crate::admin::user_add,
        crate::admin::user_remove,
        crate::console::search,
        crate::console::labels
    ),
    components(schemas(
        crate::recon::Act,
        crate::admin::PlanIn,
        crate::admin::MerchantIn,
        crate::admin::TerminalIn,
        crate::admin::UserIn,
        auth::Login,
        users::User,
        users::Role,
        users::Audited
    ))
)]
struct ApiDoc;

/// Every route, with the body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/explain/{code}", get(explain))
        .route("/api/v1/lookup", get(lookup_txn))
        .route(
            "/api/v1/terminals",
            get(terminals).post(crate::admin::terminal_add),
        )
        .route(
            "/api/v1/terminals/{tid}",
            get(terminal).put(crate::admin::terminal_update),
        )
        .route(
            "/api/v1/merchants",
            get(merchants).post(crate::admin::merchant_add),
        )
        .route(
            "/api/v1/merchants/{mid}",
            put(crate::admin::merchant_update),
        )
        .route(
            "/api/v1/faults",
            get(crate::admin::faults_show)
                .put(crate::admin::faults_set)
                .delete(crate::admin::faults_clear),
        )
        .route(
            "/api/v1/users",
            get(crate::admin::users_list).post(crate::admin::user_add),
        )
        .route("/api/v1/users/{name}", delete(crate::admin::user_remove))
        .route("/api/v1/activity", get(crate::activity::activity))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/alerts", get(alerts_list))
        .route("/api/v1/alerts/{id}/ack", post(alert_ack))
        .route("/api/v1/disputes", get(disputes))
        .route("/api/v1/disputes/{id}/act", post(crate::recon::dispute_act))
        .route("/api/v1/recon/runs", get(crate::recon::recon_runs))
        .route("/api/v1/recon/breaks", get(crate::recon::recon_breaks))
        .route("/api/v1/audit", get(audit_trail))
        .merge(crate::console::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

async fn openapi() -> Json<Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}

/// Runs `f` on the blocking pool with the ledger (`host.sqlite`).
pub(crate) async fn with_ledger<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let data = state.data.clone();
    let _permit = state.readers.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || conns::with(File::Ledger, &data, f))
        .await
        .map_err(ApiError::internal)?
}

/// Runs `f` on the blocking pool with `stats.db` (alerts, statistics).
async fn with_stats<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let data = state.data.clone();
    let _permit = state.readers.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || conns::with(File::Stats, &data, f))
        .await
        .map_err(ApiError::internal)?
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = users::User)))]
async fn me(caller: Caller) -> Json<Value> {
    Json(json!({"user": caller.user}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LangQuery {
    lang: Option<String>,
}

/// `lang=zh|en` (zh when absent).
pub(crate) fn lang_of(lang: Option<&str>) -> Result<Lang, ApiError> {
    match lang.unwrap_or("zh") {
        "zh" => Ok(Lang::Zh),
        "en" => Ok(Lang::En),
        other => Err(ApiError::bad_request(format!(
            "lang: zh or en, not {other:?}"
        ))),
    }
}

/// A response code of the CUP table: meaning, class, whether money moved, causes, steps,
/// words for the customer.
#[utoipa::path(get, path = "/api/v1/explain/{code}",
    params(("code" = String, Path, description = "two characters, e.g. 25"),
           ("lang" = Option<String>, Query, description = "zh (default) or en")),
    responses((status = 200, description = "the catalog's entry"), (status = 404, description = "not a code")))]
async fn explain(
    _caller: Caller,
    Path(code): Path<String>,
    q: Result<Query<LangQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let lang = lang_of(query(q)?.lang.as_deref())?;
    let code = code.to_ascii_uppercase();
    let entry = Catalog::builtin()
        .lookup(Table::CupPos, &code)
        .ok_or_else(|| ApiError::not_found(format!("{code} is not a code of the CUP table")))?;
    // The summary `poskit explain --json` starts from, and the words for the customer in
    // the language asked for.
    let mut body = json!(entry.summary(lang));
    body["customer"] = json!(entry.customer(lang));
    Ok(Json(body))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LookupQuery {
    rrn: Option<String>,
    tid: Option<String>,
    trace: Option<u32>,
    auth_code: Option<String>,
    last4: Option<String>,
    /// Yuan, as printed on the slip: 12.30.
    amount: Option<String>,
    /// YYYYMMDD.
    date: Option<String>,
}

fn lookup_of(q: LookupQuery, mid: Option<&str>) -> Result<Lookup, ApiError> {
    let card = match (&q.last4, &q.amount, &q.date) {
        (Some(last4), Some(amount), Some(date)) => {
            if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request("last4: four digits"));
            }
            let amount = AmountFen::parse_yuan(amount)
                .map_err(|e| ApiError::bad_request(format!("amount: {e}")))?;
            let day =
                day_of_yyyymmdd(date).ok_or_else(|| ApiError::bad_request("date: YYYYMMDD"))?;
            Some(CardQuery {
                last4: last4.clone(),
                amount_fen: amount.fen(),
                day,
                from_minute: None,
                to_minute: None,
            })
        }
        (None, None, None) => None,
        _ => return Err(ApiError::bad_request("last4, amount and date go together")),
    };
    let l = Lookup {
        rrn: q.rrn,
        tid_trace: q.tid.zip(q.trace),
        auth_code: q.auth_code,
        card,
        mid: mid.map(str::to_owned),
    };
    if l.rrn.is_none() && l.tid_trace.is_none() && l.auth_code.is_none() && l.card.is_none() {
        return Err(ApiError::bad_request(
            "give rrn, tid with trace, auth_code, or last4 with amount and date",
        ));
    }
    Ok(l)
}

/// Was the customer charged? Transactions matching what the slip or the card says, each
/// with its chain and the verdict.
#[utoipa::path(get, path = "/api/v1/lookup",
    params(("rrn" = Option<String>, Query), ("tid" = Option<String>, Query), ("trace" = Option<u32>, Query),
           ("auth_code" = Option<String>, Query), ("last4" = Option<String>, Query),
           ("amount" = Option<String>, Query, description = "yuan"), ("date" = Option<String>, Query, description = "YYYYMMDD")),
    responses((status = 200, description = "{matches: [{transaction, chain, verdict}]}")))]
async fn lookup_txn(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<LookupQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = lookup_of(query(q)?, caller.merchant())?;
    let recon = state.data.join("recon.db");
    let matches = with_ledger(&state, move |conn| {
        let state_db = recon
            .is_file()
            .then(|| Connection::open(&recon))
            .transpose()
            .map_err(ApiError::internal)?;
        poskit_recon::lookup::lookup(conn, state_db.as_ref(), &q).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(json!({"matches": matches})))
}

/// Failures a terminal's page lists at most.
const FAILURES_MAX: usize = 20;

/// A terminal with when its keys were last exchanged (its last sign-in) and their age.
fn terminal_json(t: &TerminalRow, now_ms: i64) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    v["keys"] = json!({
        "exchanged_ms": t.signed_in_ms,
        "age_ms": t.signed_in_ms.map(|at| (now_ms - at).max(0)),
    });
    v
}

/// A window's answers other than approvals, by code: what went wrong lately.
fn recent_json(w: &poskit_monitor::stats::Window) -> Value {
    let failures: serde_json::Map<String, Value> = w
        .by_code
        .iter()
        .filter(|(code, _)| code.as_str() != "00")
        .map(|(code, n)| (code.clone(), json!(n)))
        .collect();
    json!({
        "window_minutes": w.window_minutes,
        "attempts": w.attempts,
        "approved": w.approved,
        "failures": failures,
    })
}

/// Terminals by TID (a merchant user: its own), a page at a time, each with its keys' age
/// and its answers of the last hour other than approvals, by code.
#[utoipa::path(get, path = "/api/v1/terminals",
    params(("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "{terminals: [{tid, mid, status, batch, signed_in_ms, txn_limit_fen, permitted, keys: {exchanged_ms, age_ms}, last_hour: {window_minutes, attempts, approved, failures: {code: n}}}], next}")))]
async fn terminals(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    let mid = caller.merchant().map(str::to_owned);
    let (after, limit) = (page.after.as_ref().map(|c| c.1.clone()), page.limit + 1);
    let rows = with_ledger(&state, move |conn| {
        lookup::terminals_after(conn, mid.as_deref(), after.as_deref(), limit)
            .map_err(ApiError::internal)
    })
    .await?;
    let (rows, next) = page.take(rows, |t| Cursor(0, t.tid.clone()));
    let now = now_ms();
    let tids: Vec<String> = rows.iter().map(|t| t.tid.clone()).collect();
    let hours = with_stats(&state, move |conn| {
        tids.iter()
            .map(|tid| poskit_monitor::stats::window(conn, "terminal", tid, 60, now))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)
    })
    .await?;
    let rows: Vec<Value> = rows
        .iter()
        .zip(&hours)
        .map(|(t, w)| {
            let mut v = terminal_json(t, now);
            v["last_hour"] = recent_json(w);
            v
        })
        .collect();
    Ok(Json(json!({"terminals": rows, "next": next})))
}

/// One terminal: its state at the host, its keys' age, its newest failures (declines,
/// errors, reversals; card numbers masked, codes with their meaning in both languages),
/// and its figures over the last hour and day.
#[utoipa::path(get, path = "/api/v1/terminals/{tid}",
    params(("tid" = String, Path)),
    responses((status = 200, description = "terminal (with keys: {exchanged_ms, age_ms}), recent_failures: [event as /api/v1/activity has it], last_hour, last_day"),
              (status = 404, description = "no such terminal (or not yours)")))]
async fn terminal(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (key, own) = (tid.clone(), caller.merchant().map(str::to_owned));
    let found = with_ledger(&state, move |conn| {
        let row = lookup::terminal(conn, &key).map_err(ApiError::internal)?;
        let Some(row) = row.filter(|t| own.as_ref().is_none_or(|m| *m == t.mid)) else {
            return Ok(None);
        };
        let failures = lookup::recent_failures(conn, &key, &row.mid, FAILURES_MAX)
            .map_err(ApiError::internal)?;
        Ok(Some((row, failures)))
    })
    .await?;
    let (row, failures) = found.ok_or_else(|| ApiError::not_found(format!("no terminal {tid}")))?;
    let now_ms = now_ms();
    let tid2 = tid.clone();
    let (hour, day) = with_stats(&state, move |conn| {
        let w = |m| poskit_monitor::stats::window(conn, "terminal", &tid2, m, now_ms);
        Ok((
            w(60).map_err(ApiError::internal)?,
            w(1440).map_err(ApiError::internal)?,
        ))
    })
    .await?;
    let failures: Vec<Value> = failures.iter().map(crate::activity::event_json).collect();
    Ok(Json(json!({
        "terminal": terminal_json(&row, now_ms),
        "recent_failures": failures,
        "last_hour": hour,
        "last_day": day,
    })))
}

/// Merchants by MID (a merchant user: its own), a page at a time.
#[utoipa::path(get, path = "/api/v1/merchants",
    params(("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "{merchants: [{mid, name, mcc, status, txn_limit_fen, daily_limit_fen}], next}")))]
async fn merchants(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    let mid = caller.merchant().map(str::to_owned);
    let (after, limit) = (page.after.as_ref().map(|c| c.1.clone()), page.limit + 1);
    let rows = with_ledger(&state, move |conn| {
        lookup::merchants_after(conn, mid.as_deref(), after.as_deref(), limit)
            .map_err(ApiError::internal)
    })
    .await?;
    let (rows, next) = page.take(rows, |m| Cursor(0, m.mid.clone()));
    Ok(Json(json!({"merchants": rows, "next": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    terminal: Option<String>,
    merchant: Option<String>,
    /// 1 to 44 640 (31 days); default 60.
    window_minutes: Option<i64>,
}

/// Figures of a terminal, a merchant or (operators) the whole host over a window.
#[utoipa::path(get, path = "/api/v1/stats",
    params(("terminal" = Option<String>, Query), ("merchant" = Option<String>, Query), ("window_minutes" = Option<i64>, Query)),
    responses((status = 200, description = "attempts, approved, approval_rate, first_attempt_approval_rate, by_code, ...")))]
async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let minutes = q.window_minutes.unwrap_or(60);
    if !(1..=31 * 1440).contains(&minutes) {
        return Err(ApiError::bad_request("window_minutes: 1 to 44640"));
    }
    let (scope, id) = match (q.terminal, q.merchant) {
        (Some(t), None) => {
            let visible = visible_terminals(&state, &caller).await?;
            if visible.as_ref().is_some_and(|v| !v.contains(&t)) {
                return Err(ApiError::not_found(format!("no terminal {t}")));
            }
            ("terminal", t)
        }
        (None, Some(m)) if caller.may_see(Some(&m)) => ("merchant", m),
        (None, Some(m)) => return Err(ApiError::not_found(format!("no merchant {m}"))),
        (None, None) => {
            caller.operator()?;
            ("all", String::new())
        }
        (Some(_), Some(_)) => return Err(ApiError::bad_request("terminal or merchant, not both")),
    };
    let now_ms = now_ms();
    let w = with_stats(&state, move |conn| {
        poskit_monitor::stats::window(conn, scope, &id, minutes, now_ms).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(serde_json::to_value(w).map_err(ApiError::internal)?))
}

/// The terminals a merchant user may see (`None`: all).
pub(crate) async fn visible_terminals(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<HashSet<String>>, ApiError> {
    let Some(mid) = caller.merchant().map(str::to_owned) else {
        return Ok(None);
    };
    let rows = with_ledger(state, move |conn| {
        lookup::terminals(conn, Some(&mid), usize::MAX).map_err(ApiError::internal)
    })
    .await?;
    Ok(Some(rows.into_iter().map(|t| t.tid).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    /// Also those resolved in the last 24 hours.
    all: Option<bool>,
    limit: Option<usize>,
    after: Option<String>,
}

/// Alerts firing (and, with `all`, resolved in the last day), each with its diagnosis; a
/// merchant user sees those of its merchant and its terminals.
#[utoipa::path(get, path = "/api/v1/alerts",
    params(("all" = Option<bool>, Query),
           ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "{alerts: [...] (newest first), next}")))]
async fn alerts_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    let all = q.all.unwrap_or(false);
    let visible = visible_terminals(&state, &caller).await?;
    let mid = caller.merchant().map(str::to_owned);
    let now = now_ms();
    let found = with_stats(&state, move |conn| {
        alerts::list(conn, all.then_some(now - 86_400_000), usize::MAX).map_err(ApiError::internal)
    })
    .await?;
    let found = found.into_iter().filter(|a| match (&visible, &mid) {
        (Some(tids), Some(mid)) => {
            (a.scope == "terminal" && tids.contains(&a.subject))
                || (a.scope == "merchant" && &a.subject == mid)
        }
        _ => true,
    });
    // Newest first: the key is the id negated.
    let (found, next) = page.take(found, |a| Cursor(-a.id, String::new()));
    Ok(Json(json!({"alerts": found, "next": next})))
}

/// Acknowledges an alert (operators and admins); audited.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", params(("id" = i64, Path)),
    responses((status = 200, description = "the alert"), (status = 403, description = "merchants may not"), (status = 404, description = "no such alert")))]
async fn alert_ack(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.operator()?;
    // No body is needed; one that is sent must be JSON that reads.
    if let Err(e) = body
        && !matches!(e, JsonRejection::MissingJsonContentType(_))
    {
        return Err(ApiError::of_json(e));
    }
    let (name, from) = (caller.user.name.clone(), caller.from_addr.clone());
    let data = state.data.clone();
    let alert = with_stats(&state, move |conn| {
        if !alerts::ack(conn, id, &name, now_ms()).map_err(ApiError::internal)? {
            return Err(ApiError::not_found(format!("no alert {id}")));
        }
        conns::with(File::Console, &data, |console| {
            users::audit(
                console,
                &name,
                "alert-ack",
                &format!("alert {id}"),
                &from,
                "",
            )
            .map_err(ApiError::internal)
        })?;
        alerts::by_id(conn, id).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(json!({"alert": alert})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// Disputes, soonest due first (a merchant user: those of its transactions).
#[utoipa::path(get, path = "/api/v1/disputes",
    params(("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "{disputes: [...], next}")))]
async fn disputes(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    let mid = caller.merchant().map(str::to_owned);
    let now = now_ms();
    let (list, next) = with_ledger(&state, move |conn| {
        let all = poskit_recon::disputes::list(conn, None, now).map_err(ApiError::internal)?;
        let mut out = Vec::new();
        for d in all {
            // Only a merchant user's list needs each case's transaction read.
            if mid.is_none()
                || lookup::by_id(conn, d.txn_id)
                    .map_err(ApiError::internal)?
                    .and_then(|t| t.mid)
                    == mid
            {
                out.push(d);
            }
        }
        // In the list's order: due, then id.
        Ok(page.take(out, |d| Cursor(d.due_ms, format!("{:020}", d.id))))
    })
    .await?;
    Ok(Json(json!({"disputes": list, "next": next})))
}

/// The audit trail, newest first (admins), a page at a time.
#[utoipa::path(get, path = "/api/v1/audit",
    params(("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, body = [users::Audited], description = "{audit: [...], next}"), (status = 403, description = "admins only")))]
async fn audit_trail(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    // Newest first: the key is the id negated.
    let (before, limit) = (
        page.after.as_ref().map(|c| c.0.saturating_neg()),
        page.limit + 1,
    );
    let data = state.data.clone();
    let trail = tokio::task::spawn_blocking(move || {
        conns::with(File::Console, &data, |conn| {
            users::audit_before(conn, before, limit).map_err(ApiError::internal)
        })
    })
    .await
    .map_err(ApiError::internal)??;
    let (trail, next) = page.take(trail, |a| Cursor(-a.id, String::new()));
    Ok(Json(json!({"audit": trail, "next": next})))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

//! Reconciliation's runs and breaks (`recon.db`, read only) and the steps of a dispute
//! (`poskit disputes respond`'s library call). A merchant user sees its own merchant's
//! breaks only (and the counts of those); acting on a dispute is for operators and admins,
//! and audited.

use std::collections::HashSet;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use poskit_domain::calendar::{day_of_yyyymmdd, yyyymmdd};
use poskit_recon::disputes::{self, DisputeError};
use poskit_recon::state::{self, KeptRun};
use poskit_recon::{Break, Class};
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{query, visible_terminals};
use crate::auth::Caller;
use crate::conns::{self, File};
use crate::page::{Cursor, Page};
use crate::users;
use crate::{ApiError, AppState};

/// Runs `f` on the blocking pool with `recon.db` opened read only (`None`: no run yet).
async fn with_recon<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(Option<&Connection>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let path = state.data.join("recon.db");
    let _permit = state.readers.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        if !path.is_file() {
            return f(None);
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(ApiError::internal)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(ApiError::internal)?;
        f(Some(&conn))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Whether a merchant user (its merchant and terminals) may see a break; all may when
/// `None`.
fn sees(b: &Break, own: &Option<(String, HashSet<String>)>) -> bool {
    let Some((mid, tids)) = own else {
        return true;
    };
    match (b.mid(), b.tid()) {
        (Some(m), _) => m == mid,
        (None, Some(t)) => tids.contains(t),
        (None, None) => false,
    }
}

/// The caller's merchant and its terminals (`None`: sees everything).
async fn own(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<(String, HashSet<String>)>, ApiError> {
    let tids = visible_terminals(state, caller).await?;
    Ok(caller.merchant().map(str::to_owned).zip(tids))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    limit: Option<usize>,
    after: Option<String>,
}

fn run_json(r: &KeptRun, own: &Option<(String, HashSet<String>)>) -> Value {
    let mut report = r.report.clone();
    report.breaks.retain(|b| sees(b, own));
    json!({
        "day": yyyymmdd(r.day),
        "run_ms": r.run_ms,
        "status": report.status,
        "closed": r.closed,
        "incomplete_reasons": report.incomplete_reasons,
        "matched": report.matched,
        "breaks": report.breaks.len(),
        "counts": report.counts(),
        "balanced": report.balanced(),
    })
}

/// The reconciliation runs on file, newest day first (a day keeps its last run), each with
/// its break counts by class and whether it balanced; a merchant user counts its own.
#[utoipa::path(get, path = "/api/v1/recon/runs",
    params(("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "{runs: [{day, run_ms, status, closed, incomplete_reasons, matched, breaks, counts: {class: n}, balanced}], next}")))]
pub(crate) async fn recon_runs(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    let own = own(&state, &caller).await?;
    // Newest first: the key is the day negated, so the cursor is too.
    let before = page.after.as_ref().map(|c| c.0.saturating_neg());
    let limit = page.limit + 1;
    let runs = with_recon(&state, move |conn| match conn {
        None => Ok(Vec::new()),
        Some(c) => state::runs(c, before, limit).map_err(ApiError::internal),
    })
    .await?;
    let (runs, next) = page.take(runs, |r| Cursor(-r.day, String::new()));
    let runs: Vec<Value> = runs.iter().map(|r| run_json(r, &own)).collect();
    Ok(Json(json!({"runs": runs, "next": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreaksQuery {
    /// YYYYMMDD.
    day: String,
    class: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// A break as the API gives it: as `poskit recon --json` has it, with the transaction's
/// RRN (the switch's, else the host's id as twelve digits).
fn break_json(b: &Break) -> Value {
    let rrn = b
        .records
        .switch
        .as_ref()
        .and_then(|s| s["rrn"].as_str().map(str::to_owned))
        .or_else(|| {
            let id = b.records.host.as_ref()?["id"].as_i64()?;
            Some(format!("{id:012}"))
        });
    let mut v = serde_json::to_value(b).unwrap_or_default();
    v["rrn"] = json!(rrn);
    v
}

/// The breaks of one day's run, in the run's order (priority, then id), of one class when
/// asked; a merchant user sees its own merchant's only.
#[utoipa::path(get, path = "/api/v1/recon/breaks",
    params(("day" = String, Query, description = "YYYYMMDD"),
           ("class" = Option<String>, Query, description = "A..G, duplicate, batch_total or one_sided_reversal"),
           ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
           ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 200, description = "{day, status, breaks: [{id, class, status, priority, amount_fen, rrn, records, action, resolution, advice, ...}], next}"),
              (status = 404, description = "no run for that day")))]
pub(crate) async fn recon_breaks(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<BreaksQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let page = Page::of(q.limit, q.after.as_deref())?;
    let day = day_of_yyyymmdd(&q.day).ok_or_else(|| ApiError::bad_request("day: YYYYMMDD"))?;
    let class = match q.class.as_deref() {
        None => None,
        Some(c) => Some(Class::parse(c).ok_or_else(|| {
            let all: Vec<_> = Class::ALL.iter().map(|c| c.as_str()).collect();
            ApiError::bad_request(format!("class: one of {}, not {c:?}", all.join(", ")))
        })?),
    };
    let own = own(&state, &caller).await?;
    let run = with_recon(&state, move |conn| {
        conn.map(|c| state::run_of(c, day))
            .transpose()
            .map_err(ApiError::internal)
    })
    .await?
    .flatten()
    .ok_or_else(|| ApiError::not_found(format!("no reconciliation run for {}", q.day)))?;
    let rows = run
        .report
        .breaks
        .iter()
        .filter(|b| class.is_none_or(|c| b.class == c) && sees(b, &own));
    let (rows, next) = page.take(rows, |b| Cursor(i64::from(b.priority), b.id.clone()));
    let rows: Vec<Value> = rows.into_iter().map(break_json).collect();
    Ok(Json(json!({
        "day": q.day, "status": run.report.status, "breaks": rows, "next": next
    })))
}

/// A step on a dispute.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Act {
    /// accept, represent, second-chargeback or reply (as `poskit disputes respond`).
    pub step: String,
    /// Why, in the audit trail.
    pub note: Option<String>,
    /// What supports the step (a reference to the slip, the journal extract): kept with
    /// the step's event. Needed to represent.
    pub evidence: Option<String>,
}

fn refused(e: DisputeError) -> ApiError {
    match e {
        DisputeError::Transition { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        DisputeError::Refused(why) => ApiError::new(StatusCode::CONFLICT, "refused", why),
        other => ApiError::internal(other),
    }
}

/// Takes a step on a dispute (operators and admins), as `poskit disputes respond` does;
/// audited. A step the case cannot take now is 409 naming those it can.
#[utoipa::path(post, path = "/api/v1/disputes/{id}/act", params(("id" = i64, Path)), request_body = Act,
    responses((status = 200, description = "{dispute}"), (status = 400, description = "no such step; represent without evidence"),
              (status = 403, description = "merchants may not"), (status = 404, description = "no such dispute"),
              (status = 409, description = "not a step the case can take now (`conflict`), or a rule refuses it (`refused`)")))]
pub(crate) async fn dispute_act(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: Result<Json<Act>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.operator()?;
    let Json(act) = body.map_err(ApiError::of_json)?;
    let step = disputes::step_of(&act.step).ok_or_else(|| {
        ApiError::bad_request(format!(
            "step: accept, represent, second-chargeback or reply, not {:?}",
            act.step
        ))
    })?;
    if step == disputes::Step::Represent && act.evidence.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("evidence: needed to represent"));
    }
    let (name, from, data) = (
        caller.user.name.clone(),
        caller.from_addr.clone(),
        state.data.clone(),
    );
    let _permit = state.readers.acquire().await.map_err(ApiError::internal)?;
    let d = tokio::task::spawn_blocking(move || {
        let mut conn = poskit_host::store::sqlite::open(&data).map_err(ApiError::internal)?;
        if disputes::get(&conn, id).map_err(refused)?.is_none() {
            return Err(ApiError::not_found(format!("no dispute {id}")));
        }
        let now =
            poskit_host::clock::HostTime::now(poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT, 0);
        let d = disputes::respond(&mut conn, id, step, act.evidence.as_deref(), now)
            .map_err(refused)?;
        let detail = json!({"step": act.step, "state": d.state, "e_code": d.e_code,
                            "note": act.note, "evidence": act.evidence});
        conns::with(File::Console, &data, |console| {
            users::audit(
                console,
                &name,
                "dispute-act",
                &format!("dispute {id}"),
                &from,
                &detail.to_string(),
            )
            .map_err(ApiError::internal)
        })?;
        Ok(d)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(json!({"dispute": d})))
}

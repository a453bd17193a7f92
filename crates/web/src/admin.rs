//! What only admins do (issue 22 §1, §2), each write audited: the fault plan the host
//! applies (stored and validated by `writer::store_fault_plan`, the call of `poskit host
//! faults set`), master data (merchants and terminals through `dataset::parse_toml` and
//! `store::sqlite::import`, the path of `poskit host import`) and the console's users (the
//! calls of `poskit users`). Nothing is decided here that those do not decide: a bad plan or
//! a bad record is refused by the same parser with the same words, and nothing is changed.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use poskit_domain::Pan;
use poskit_host::HostError;
use poskit_host::faults::FaultPlan;
use poskit_host::store::lookup;
use poskit_host::writer;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::api::with_ledger;
use crate::auth::Caller;
use crate::conns::{self, File};
use crate::users::{self, Role, UserError};
use crate::{ApiError, AppState};

/// How long a change of the fault plan waits for a running host to apply it (a host looks
/// every 250 ms), as `poskit host faults set` does.
const FAULTS_APPLIED_WAIT: Duration = Duration::from_millis(1_000);

/// Appends to the audit trail on the blocking pool.
async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    target: String,
    detail: Value,
) -> Result<(), ApiError> {
    let (data, name, from) = (
        state.data.clone(),
        caller.user.name.clone(),
        caller.from_addr.clone(),
    );
    tokio::task::spawn_blocking(move || {
        conns::with(File::Console, &data, |conn| {
            users::audit(conn, &name, action, &target, &from, &detail.to_string())
                .map_err(ApiError::internal)
        })
    })
    .await
    .map_err(ApiError::internal)?
}

// ---- The fault plan ---------------------------------------------------------------------

/// A fault plan to store.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanIn {
    /// The plan as TOML, as `poskit host faults set` reads it (`seed`, `[[rules]]`); empty
    /// for no faults.
    pub plan: String,
}

/// The plan's text with every whole card number a rule names masked (a rule may name a
/// test card by its number; a BIN prefix stays). Unparsable text is not shown.
fn masked_plan(text: &str) -> String {
    let Ok(mut table) = toml::from_str::<toml::Table>(text) else {
        return String::new();
    };
    let mut masked = false;
    if let Some(toml::Value::Array(rules)) = table.get_mut("rules") {
        for rule in rules.iter_mut().filter_map(toml::Value::as_table_mut) {
            if let Some(toml::Value::String(card)) = rule.get_mut("card")
                && let Ok(pan) = Pan::parse(card)
            {
                *card = pan.masked();
                masked = true;
            }
        }
    }
    if !masked {
        return text.to_owned(); // as stored, comments and all
    }
    toml::to_string(&table).unwrap_or_default()
}

fn rule_names(text: &str) -> Vec<String> {
    FaultPlan::parse(text)
        .map(|p| p.rules.into_iter().map(|r| r.name).collect())
        .unwrap_or_default()
}

/// The stored plan as the API shows it.
fn plan_json(stored: Option<(i64, i64, String)>) -> Value {
    let (version, applied_version, text) = stored.unwrap_or((0, 0, String::new()));
    json!({
        "version": version,
        "applied_version": applied_version,
        "applied": version > 0 && applied_version == version,
        "rules": rule_names(&text),
        "plan": masked_plan(&text),
    })
}

async fn stored_plan(state: &AppState) -> Result<Option<(i64, i64, String)>, ApiError> {
    with_ledger(state, |conn| {
        writer::stored_fault_plan(conn).map_err(ApiError::internal)
    })
    .await
}

/// The fault plan a running host applies: its version, whether the host has applied it,
/// its rules' names and its text (card numbers masked).
#[utoipa::path(get, path = "/api/v1/faults",
    responses((status = 200, description = "{version, applied_version, applied, rules: [name], plan}"),
              (status = 403, description = "admins only")))]
pub(crate) async fn faults_show(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    Ok(Json(plan_json(stored_plan(&state).await?)))
}

/// Stores `text` as the plan (refused whole, naming the problem, when it does not parse),
/// waits a moment for a running host to apply it, audits it, and answers the plan.
async fn store_plan(
    state: &AppState,
    caller: &Caller,
    text: String,
    action: &'static str,
) -> Result<Json<Value>, ApiError> {
    let rules = rule_names(&text);
    let version = with_ledger(state, move |conn| {
        writer::store_fault_plan(conn, &text).map_err(|e| match e {
            HostError::Config(why) => ApiError::bad_request(format!("plan: {why}")),
            other => ApiError::internal(other),
        })
    })
    .await?;
    let detail = json!({"version": version, "rules": rules});
    audit(state, caller, action, "fault plan".into(), detail).await?;
    let started = tokio::time::Instant::now();
    loop {
        let stored = stored_plan(state).await?;
        let applied = stored.as_ref().is_some_and(|(v, a, _)| a >= v);
        if applied || started.elapsed() >= FAULTS_APPLIED_WAIT {
            return Ok(Json(plan_json(stored)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces the fault plan (admins; audited). A plan that does not parse is 400 naming the
/// problem (the rule and the field), and the plan in force stays.
#[utoipa::path(put, path = "/api/v1/faults", request_body = PlanIn,
    responses((status = 200, description = "the plan stored: {version, applied_version, applied, rules, plan}"),
              (status = 400, description = "the plan does not parse: which rule, which field"),
              (status = 403, description = "admins only")))]
pub(crate) async fn faults_set(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<PlanIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let Json(plan) = body.map_err(ApiError::of_json)?;
    store_plan(&state, &caller, plan.plan, "faults-set").await
}

/// Stores an empty plan: no faults (admins; audited).
#[utoipa::path(delete, path = "/api/v1/faults",
    responses((status = 200, description = "the empty plan stored"), (status = 403, description = "admins only")))]
pub(crate) async fn faults_clear(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    store_plan(&state, &caller, String::new(), "faults-clear").await
}

// ---- Master data ------------------------------------------------------------------------

/// A merchant, as `poskit host import` reads one (`[[merchants]]`).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantIn {
    /// 15 digits (field 42); on an update, the path's (may be left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    pub name: String,
    /// Merchant category code, 4 digits.
    pub mcc: String,
    /// active (the default), inactive or blacklisted (both answered 03).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Largest amount of one transaction (61 above it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_limit_fen: Option<u64>,
    /// Largest total of a day's debits (61 above it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_limit_fen: Option<u64>,
}

/// A terminal, as `poskit host import` reads one (`[[terminals]]`).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalIn {
    /// 8 characters (field 41); on an update, the path's (may be left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Its merchant, which must be on file.
    pub mid: String,
    /// The terminal master key, hex (8, 16 or 24 bytes), stored wrapped under the KEK and
    /// never shown. On an update the same key keeps the terminal's working keys; another
    /// one makes it sign in again.
    pub tmk: String,
    /// active (the default) or inactive (its requests answered 97).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_limit_fen: Option<u64>,
    /// Kinds it may do (`sale`, `void`, `refund`, ...); absent: all (else 58).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permitted: Option<Vec<String>>,
}

/// Takes the id from the path into the record; one given in both must agree.
fn same_id(field: &str, path: &str, body: &mut Option<String>) -> Result<(), ApiError> {
    match body {
        Some(given) if given != path => Err(ApiError::bad_request(format!(
            "{field}: {given} in the body, {path} in the path"
        ))),
        _ => {
            *body = Some(path.to_owned());
            Ok(())
        }
    }
}

/// The record as a data file of one table (`merchants`, `terminals`): the text
/// `dataset::parse_toml` reads. Kept in memory that is wiped (a terminal's carries its
/// master key).
fn data_file<T: Serialize>(table: &str, row: &T) -> Result<Zeroizing<String>, ApiError> {
    let row = toml::Value::try_from(row).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut file = toml::Table::new();
    file.insert(table.to_owned(), toml::Value::Array(vec![row]));
    let text = toml::to_string(&file).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Zeroizing::new(text))
}

/// Loads a data file of one record as `poskit host import` does (the ledger's secrets
/// opened: a terminal's master key is wrapped under the KEK), after `check` on the ledger
/// (whether the record may be added or changed).
async fn import(
    state: &AppState,
    text: Zeroizing<String>,
    check: impl FnOnce(&rusqlite::Connection) -> Result<(), ApiError> + Send + 'static,
) -> Result<(), ApiError> {
    let dir = state.dir.clone();
    let _permit = state.readers.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        let (mut conn, keys) = dir.open_keys().map_err(ApiError::internal)?;
        check(&conn)?;
        let set = poskit_host::dataset::parse_toml(&text, keys.pins()).map_err(|e| match e {
            HostError::Data { what } => ApiError::bad_request(what),
            other => ApiError::internal(other),
        })?;
        let now =
            poskit_host::clock::HostTime::now(poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT, 0);
        poskit_host::store::sqlite::import(&mut conn, &keys, &set, &now)
            .map_err(ApiError::internal)?;
        Ok(())
    })
    .await
    .map_err(ApiError::internal)?
}

/// What a merchant check needs to know: whether it is on file.
fn merchant_known(conn: &rusqlite::Connection, mid: &str) -> Result<bool, ApiError> {
    Ok(lookup::merchant_status(conn, mid)
        .map_err(ApiError::internal)?
        .is_some())
}

async fn merchant_row(state: &AppState, mid: String) -> Result<Value, ApiError> {
    let rows = with_ledger(state, move |conn| {
        lookup::merchants(conn, Some(&mid), 1).map_err(ApiError::internal)
    })
    .await?;
    Ok(json!(rows.first()))
}

/// Adds or changes a merchant (`adding`: it must not exist yet; else it must).
async fn put_merchant(
    state: &AppState,
    caller: &Caller,
    m: MerchantIn,
    adding: bool,
) -> Result<Json<Value>, ApiError> {
    let mid = m
        .mid
        .clone()
        .ok_or_else(|| ApiError::bad_request("mid: required"))?;
    let text = data_file("merchants", &m)?;
    let id = mid.clone();
    import(state, text, move |conn| {
        match (adding, merchant_known(conn, &id)?) {
            (true, true) => Err(ApiError::conflict(format!(
                "merchant {id} exists already (PUT /api/v1/merchants/{id} changes it)"
            ))),
            (false, false) => Err(ApiError::not_found(format!("no merchant {id}"))),
            _ => Ok(()),
        }
    })
    .await?;
    let action = if adding {
        "merchant-add"
    } else {
        "merchant-update"
    };
    let detail = serde_json::to_value(&m).map_err(ApiError::internal)?;
    audit(state, caller, action, format!("merchant {mid}"), detail).await?;
    Ok(Json(json!({"merchant": merchant_row(state, mid).await?})))
}

/// Adds a merchant (admins; audited), checked as `poskit host import` checks it.
#[utoipa::path(post, path = "/api/v1/merchants", request_body = MerchantIn,
    responses((status = 201, description = "{merchant}"), (status = 400, description = "a field that does not read, named"),
              (status = 403, description = "admins only"), (status = 409, description = "exists already")))]
pub(crate) async fn merchant_add(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<MerchantIn>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.admin()?;
    let Json(m) = body.map_err(ApiError::of_json)?;
    Ok((
        StatusCode::CREATED,
        put_merchant(&state, &caller, m, true).await?,
    ))
}

/// Changes a merchant: the record is replaced as an import replaces it (admins; audited).
#[utoipa::path(put, path = "/api/v1/merchants/{mid}", params(("mid" = String, Path)), request_body = MerchantIn,
    responses((status = 200, description = "{merchant}"), (status = 400, description = "a field that does not read, named"),
              (status = 403, description = "admins only"), (status = 404, description = "no such merchant")))]
pub(crate) async fn merchant_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(mid): Path<String>,
    body: Result<Json<MerchantIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let Json(mut m) = body.map_err(ApiError::of_json)?;
    same_id("mid", &mid, &mut m.mid)?;
    put_merchant(&state, &caller, m, false).await
}

/// Adds or changes a terminal (`adding`: it must not exist yet; else it must). Its
/// merchant must be on file.
async fn put_terminal(
    state: &AppState,
    caller: &Caller,
    t: TerminalIn,
    adding: bool,
) -> Result<Json<Value>, ApiError> {
    let tid = t
        .tid
        .clone()
        .ok_or_else(|| ApiError::bad_request("tid: required"))?;
    let text = data_file("terminals", &t)?;
    let (id, mid) = (tid.clone(), t.mid.clone());
    import(state, text, move |conn| {
        let known = lookup::terminal(conn, &id)
            .map_err(ApiError::internal)?
            .is_some();
        match (adding, known) {
            (true, true) => Err(ApiError::conflict(format!(
                "terminal {id} exists already (PUT /api/v1/terminals/{id} changes it)"
            ))),
            (false, false) => Err(ApiError::not_found(format!("no terminal {id}"))),
            _ if !merchant_known(conn, &mid)? => Err(ApiError::bad_request(format!(
                "mid: no merchant {mid} at this host"
            ))),
            _ => Ok(()),
        }
    })
    .await?;
    let action = if adding {
        "terminal-add"
    } else {
        "terminal-update"
    };
    let mut detail = serde_json::to_value(&t).map_err(ApiError::internal)?;
    detail["tmk"] = json!("(given, not kept here)");
    audit(state, caller, action, format!("terminal {tid}"), detail).await?;
    let key = tid.clone();
    let row = with_ledger(state, move |conn| {
        lookup::terminal(conn, &key).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(json!({ "terminal": row })))
}

/// Adds a terminal (admins; audited), checked as `poskit host import` checks it; its master
/// key is stored wrapped and never shown.
#[utoipa::path(post, path = "/api/v1/terminals", request_body = TerminalIn,
    responses((status = 201, description = "{terminal}"), (status = 400, description = "a field that does not read, named; a merchant not on file"),
              (status = 403, description = "admins only"), (status = 409, description = "exists already")))]
pub(crate) async fn terminal_add(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<TerminalIn>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.admin()?;
    let Json(t) = body.map_err(ApiError::of_json)?;
    Ok((
        StatusCode::CREATED,
        put_terminal(&state, &caller, t, true).await?,
    ))
}

/// Changes a terminal: the record is replaced as an import replaces it (admins; audited).
#[utoipa::path(put, path = "/api/v1/terminals/{tid}", params(("tid" = String, Path)), request_body = TerminalIn,
    responses((status = 200, description = "{terminal}"), (status = 400, description = "a field that does not read, named"),
              (status = 403, description = "admins only"), (status = 404, description = "no such terminal")))]
pub(crate) async fn terminal_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    body: Result<Json<TerminalIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let Json(mut t) = body.map_err(ApiError::of_json)?;
    same_id("tid", &tid, &mut t.tid)?;
    put_terminal(&state, &caller, t, false).await
}

// ---- Users ------------------------------------------------------------------------------

/// A user to add, as `poskit users add` takes one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// 1 to 64 letters, digits, - _ . @
    pub name: String,
    /// merchant, operator or admin.
    pub role: String,
    /// The merchant of a merchant user (on file at the host); none for the others.
    pub merchant: Option<String>,
    /// 10 characters at least; kept as an argon2 hash.
    pub password: String,
}

/// Runs `f` with `console.db` on the blocking pool.
async fn with_console<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let data = state.data.clone();
    tokio::task::spawn_blocking(move || conns::with(File::Console, &data, f))
        .await
        .map_err(ApiError::internal)?
}

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::Invalid(why) => ApiError::bad_request(why),
        other => ApiError::internal(other),
    }
}

/// Every user of the console, by name (admins).
#[utoipa::path(get, path = "/api/v1/users",
    responses((status = 200, body = [users::User], description = "{users: [...]}"), (status = 403, description = "admins only")))]
pub(crate) async fn users_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    let all = with_console(&state, |conn| users::list(conn).map_err(user_error)).await?;
    Ok(Json(json!({ "users": all })))
}

/// Adds a user as `poskit users add` does (admins; audited). A merchant user's merchant
/// must be on file; a name taken is 409.
#[utoipa::path(post, path = "/api/v1/users", request_body = UserIn,
    responses((status = 201, description = "{user}"), (status = 400, description = "a field that does not read, named"),
              (status = 403, description = "admins only"), (status = 409, description = "the name is taken")))]
pub(crate) async fn user_add(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<UserIn>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.admin()?;
    let Json(u) = body.map_err(ApiError::of_json)?;
    let role = Role::parse(&u.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role: merchant, operator or admin, not {:?}",
            u.role
        ))
    })?;
    if let Some(mid) = u.merchant.clone() {
        with_ledger(&state, move |ledger| {
            users::check_merchant(ledger, &mid)
                .map_err(|e| ApiError::bad_request(format!("merchant: {e}")))
        })
        .await?;
    }
    let name = u.name.clone();
    let merchant = u.merchant.clone();
    let user = with_console(&state, move |conn| {
        if users::exists(conn, &u.name).map_err(user_error)? {
            return Err(ApiError::conflict(format!(
                "user {} exists already",
                u.name
            )));
        }
        users::add(conn, &u.name, role, u.merchant.as_deref(), &u.password).map_err(user_error)?;
        let all = users::list(conn).map_err(user_error)?;
        Ok(all.into_iter().find(|x| x.name == u.name))
    })
    .await?;
    let detail = json!({"role": role.as_str(), "merchant": merchant});
    audit(&state, &caller, "user-add", name, detail).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

/// Removes a user and every session and token of theirs, as `poskit users remove` does
/// (admins; audited). An admin does not remove themselves (409: another admin does).
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "{removed}"), (status = 403, description = "admins only"),
              (status = 404, description = "no such user"), (status = 409, description = "oneself")))]
pub(crate) async fn user_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.admin()?;
    if name == caller.user.name {
        return Err(ApiError::conflict(
            "an admin does not remove themselves: another admin does",
        ));
    }
    let key = name.clone();
    let data = state.data.clone();
    let removed = tokio::task::spawn_blocking(move || {
        // Its own connection: removing takes a transaction (`&mut`).
        let mut conn = users::open(&data).map_err(user_error)?;
        users::remove(&mut conn, &key).map_err(user_error)
    })
    .await
    .map_err(ApiError::internal)??;
    if !removed {
        return Err(ApiError::not_found(format!("no user {name}")));
    }
    audit(&state, &caller, "user-remove", name.clone(), json!({})).await?;
    Ok(Json(json!({ "removed": name })))
}

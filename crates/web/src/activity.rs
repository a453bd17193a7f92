//! Live activity (issue 22 §3): the newest transactions the host recorded, for a page that
//! polls every few seconds. `GET /api/v1/activity?after=ID` answers the rows after `ID`,
//! newest first, and `next`, the id to ask after next time. Card numbers are only ever the
//! ledger's masked form (first 6, last 4); each code comes with the catalog's meaning in
//! both languages, so the page shows the one in use. A merchant user sees its own.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use poskit_codes::{Catalog, Lang, Table};
use poskit_domain::{Pan, TransactionKind};
use poskit_host::store::lookup::{self, TxnView};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{query, with_ledger};
use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Rows a poll answers when the caller does not say.
const EVENTS_DEFAULT: usize = 50;

/// A card number as people may see it: the ledger keeps it masked already; anything that
/// reads as a whole number is masked here too (first 6, last 4), whatever wrote it.
pub(crate) fn masked_pan(pan: Option<&str>) -> Option<String> {
    let pan = pan?;
    Some(match Pan::parse(pan) {
        Ok(whole) => whole.masked(),
        Err(_) => pan.to_owned(),
    })
}

/// A code of the CUP table with the catalog's meaning in each language and its class
/// (`null` meaning for a code the catalog does not know).
pub(crate) fn code_json(code: &str) -> Value {
    match Catalog::builtin().lookup(Table::CupPos, code) {
        Some(e) => json!({
            "code": code,
            "meaning": {"zh": e.meaning(Lang::Zh), "en": e.meaning(Lang::En)},
            "class": e.class().as_str(),
        }),
        None => json!({"code": code, "meaning": null, "class": null}),
    }
}

/// A transaction row as an event: what happened where, for how much, answered what.
pub(crate) fn event_json(t: &TxnView) -> Value {
    json!({
        "id": t.id,
        "rrn": t.rrn,
        "mti": t.mti,
        "at_ms": t.created_ms,
        "kind": t.kind,
        "kind_name": t.kind.as_deref().and_then(TransactionKind::from_slug).map(|k| {
            json!({"zh": k.name_zh(), "en": k.name_en()})
        }),
        "reversal": t.reversal,
        "tid": t.tid,
        "mid": t.mid,
        "batch": t.batch,
        "trace": t.stan,
        "amount_fen": t.amount_fen,
        "pan": masked_pan(t.pan_masked.as_deref()),
        "code": code_json(&t.code),
        "state": t.state,
        "reason": t.reason,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActivityQuery {
    /// The `next` of the poll before; absent: the newest rows.
    after: Option<i64>,
    /// 1 to 200, default 50.
    limit: Option<usize>,
}

/// The newest transactions after `after` (a merchant user: its merchant's), newest first,
/// with `next`, the id to poll after. A poll reads at most the ledger's newest 10 000 rows:
/// one that comes after more than that sees the newest of them.
#[utoipa::path(get, path = "/api/v1/activity",
    params(("after" = Option<i64>, Query, description = "the `next` of the poll before"),
           ("limit" = Option<usize>, Query, description = "1 to 200, default 50")),
    responses((status = 200, description = "{events: [{id, rrn, mti, at_ms, kind, kind_name: {zh, en}, reversal, tid, mid, batch, trace, amount_fen, pan (masked), code: {code, meaning: {zh, en}, class}, state, reason}] (newest first), next}"),
              (status = 400, description = "after or limit out of bounds")))]
pub(crate) async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(EVENTS_DEFAULT);
    if !(1..=lookup::ROWS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: 1 to {}, not {limit}",
            lookup::ROWS_MAX
        )));
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "after: the `next` of the poll before",
        ));
    }
    let mid = caller.merchant().map(str::to_owned);
    let (rows, next) = with_ledger(&state, move |conn| {
        lookup::newest(conn, after, mid.as_deref(), limit).map_err(ApiError::internal)
    })
    .await?;
    let events: Vec<Value> = rows.iter().map(event_json).collect();
    Ok(Json(json!({"events": events, "next": next})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_card_number_is_masked_and_a_masked_one_kept() {
        assert_eq!(
            masked_pan(Some("6222021234567890128")).as_deref(),
            Some("622202*********0128")
        );
        assert_eq!(
            masked_pan(Some("622202*********0128")).as_deref(),
            Some("622202*********0128")
        );
        assert_eq!(masked_pan(None), None);
    }

    #[test]
    fn a_code_comes_with_its_meaning_in_both_languages() {
        let v = code_json("51");
        assert!(
            v["meaning"]["zh"]
                .as_str()
                .unwrap()
                .chars()
                .any(|c| c > '\u{2e80}')
        );
        assert!(v["meaning"]["en"].as_str().unwrap().is_ascii());
        assert!(code_json("Q9")["meaning"].is_null());
    }
}

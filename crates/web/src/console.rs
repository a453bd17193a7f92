//! The web console (issue 22 §3): `/` (the console, a single page with hash routes) and
//! `/login`, their script, style sheet and icon from `assets/`, built into the binary.
//! Every page and asset is answered with a Content-Security-Policy that allows only this
//! origin's files (no inline script or style), `nosniff` and `X-Frame-Options: DENY`.
//! The pages hold no data: their script asks `/api/v1/` with the session cookie and sends
//! the session's CSRF token on every write. Two routes of their own: `/api/v1/search` finds
//! the codes and symptom guides for what someone types ("密码错", "card swallowed");
//! `/api/v1/catalog/labels` gives the catalog's words for the values of an explanation
//! (class, money moved, category, actor, retry), so that the pages hold none of them.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use poskit_codes::advice::{self, BreakAdvice};
use poskit_codes::{Actor, Catalog, Category, Class, Found, Lang, MoneyMoved, Retry, Table};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Where the pages may load from: this origin only, scripts from files only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Hits `/api/v1/search` answers at most.
const SEARCH_HITS_MAX: usize = 10;
/// A longer query is refused (the catalog's search reads only its first terms anyway).
const SEARCH_QUERY_CHARS_MAX: usize = 200;

/// The console's files: name under `/assets/`, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/views.js"),
    ),
    (
        "ops.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/ops.js"),
    ),
    (
        "core.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/core.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/i18n.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/chart.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../assets/icon.svg"),
    ),
];

const INDEX_HTML: &str = include_str!("../assets/index.html");
const LOGIN_HTML: &str = include_str!("../assets/login.html");

/// The console's routes, to be merged into the API's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/login",
            get(|| async { page("text/html; charset=utf-8", LOGIN_HTML) }),
        )
        .route("/assets/{name}", get(asset))
        // What a browser asks for where no page names the icon.
        .route(
            "/favicon.ico",
            get(|| async { page("image/svg+xml", include_str!("../assets/icon.svg")) }),
        )
        .route("/api/v1/search", get(search))
        .route("/api/v1/catalog/labels", get(labels))
}

/// A page or asset with the console's security headers; not cached, so that a new binary's
/// script is what runs.
fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => page(content_type, body),
        None => ApiError::not_found(format!("no asset {name}")).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelsQuery {
    lang: Option<String>,
}

/// `{value: label}` for each of `all`.
fn labelled<T: Copy>(
    all: &[T],
    value: fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
) -> Value {
    all.iter()
        .map(|&v| (value(v).to_owned(), Value::from(label(v))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The catalog's words, in `lang`, for the values of `/api/v1/explain`'s `class`,
/// `money_moved`, `category`, `actor` and `retry`; and for reconciliation's break classes
/// (`data/breaks.toml`): each class's name and what to tell the customer.
#[utoipa::path(get, path = "/api/v1/catalog/labels",
    params(("lang" = Option<String>, Query, description = "zh (default) or en")),
    responses((status = 200, description = "{class, money_moved, category, actor, retry, break_class, break_customer}: {value: label}")))]
pub(crate) async fn labels(
    _caller: Caller,
    q: Result<Query<LabelsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let lang = crate::api::lang_of(q.lang.as_deref())?;
    Ok(Json(json!({
        "class": labelled(&Class::ALL, Class::as_str, |v| v.label(lang)),
        "money_moved": labelled(&MoneyMoved::ALL, MoneyMoved::as_str, |v| v.label(lang)),
        "category": labelled(&Category::ALL, Category::as_str, |v| v.label(lang)),
        "actor": labelled(&Actor::ALL, Actor::as_str, |v| v.label(lang)),
        "retry": labelled(&Retry::ALL, Retry::as_str, |v| v.label(lang)),
        "break_class": break_words(|b| b.name(lang)),
        "break_customer": break_words(|b| match lang {
            Lang::Zh => &b.customer_zh,
            Lang::En => &b.customer_en,
        }),
    })))
}

/// `{class: words}` for every break class of the catalog.
fn break_words(words: impl Fn(&'static BreakAdvice) -> &'static str) -> Value {
    advice::break_classes()
        .iter()
        .map(|b| (b.class.clone(), Value::from(words(b))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    q: String,
    lang: Option<String>,
}

/// The codes of the CUP table and the symptom guides matching what was typed, best first:
/// `{"hits": [{"kind": "code", "code", "meaning", "class"} | {"kind": "symptom", "id",
/// "title", "steps", "customer", "related"}]}`, in `lang` (zh by default).
#[utoipa::path(get, path = "/api/v1/search",
    params(("q" = String, Query, description = "a code or what the customer or the POS said"),
           ("lang" = Option<String>, Query, description = "zh (default) or en")),
    responses((status = 200, description = "{hits: [...]}"), (status = 400, description = "q missing or too long")))]
pub(crate) async fn search(
    _caller: Caller,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let lang = crate::api::lang_of(q.lang.as_deref())?;
    if q.q.chars().count() > SEARCH_QUERY_CHARS_MAX {
        return Err(ApiError::bad_request(format!(
            "q: at most {SEARCH_QUERY_CHARS_MAX} characters"
        )));
    }
    let catalog = Catalog::builtin();
    let hits: Vec<Value> = catalog
        .search(&q.q, Table::CupPos)
        .into_iter()
        .filter_map(|hit| match hit.found {
            // Local codes are not answered by /api/v1/explain: the console links codes there.
            Found::Entry(e) if catalog.lookup(Table::CupPos, e.code()).is_some() => Some(json!({
                "kind": "code",
                "code": e.code(),
                "meaning": e.meaning(lang),
                "class": e.class().as_str(),
            })),
            Found::Entry(_) => None,
            Found::Symptom(s) => Some(json!({
                "kind": "symptom",
                "id": s.id(),
                "title": s.title(lang),
                "steps": s.steps(lang),
                "customer": s.customer(lang),
                "related": s.related(),
            })),
        })
        .take(SEARCH_HITS_MAX)
        .collect();
    Ok(Json(json!({ "hits": hits })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_pages_name_is_served() {
        for html in [INDEX_HTML, LOGIN_HTML] {
            for part in html.split("/assets/").skip(1) {
                let name = part.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{name} is named but not served"
                );
            }
            assert!(!html.contains("<script>"), "no inline script");
            assert!(!html.contains("style="), "no inline style");
        }
    }

    #[test]
    fn modules_import_only_served_assets() {
        for (name, _, text) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            for part in text.split("from \"./").skip(1) {
                let imported = part.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == imported),
                    "{name} imports {imported}, which is not served"
                );
            }
        }
    }

    /// The keys a text uses after each of `openers` (up to the closing quote), where the
    /// opener starts a word (`t("key"`, not `split("?"`).
    fn keys_after<'a>(text: &'a str, openers: &[&str]) -> Vec<&'a str> {
        let mut keys = Vec::new();
        for opener in openers {
            for (at, _) in text.match_indices(opener) {
                let before = text[..at].chars().next_back().unwrap_or(' ');
                if before.is_alphanumeric() || before == '_' || before == '.' {
                    continue;
                }
                let rest = &text[at + opener.len()..];
                keys.extend(rest.split('"').next());
            }
        }
        keys
    }

    #[test]
    fn every_label_the_pages_use_is_in_both_languages() {
        let labels = include_str!("../assets/i18n.js");
        let (zh, en) = labels.split_once("\n  en: {").unwrap();
        let scripts: Vec<&str> = ASSETS
            .iter()
            .filter(|(n, _, _)| n.ends_with(".js"))
            .map(|(_, _, text)| *text)
            .collect();
        let mut used = Vec::new();
        for text in scripts.iter().chain([&INDEX_HTML, &LOGIN_HTML]) {
            used.extend(keys_after(text, &["t(\"", "data-l=\"", "group(\""]));
        }
        used.retain(|k| !k.is_empty());
        assert!(used.len() > 50, "{used:?}");
        for key in used {
            let key = key.strip_prefix("f-").unwrap_or(key);
            for (lang, table) in [("zh", zh), ("en", en)] {
                assert!(
                    table.contains(&format!("\n    {key}: ")),
                    "label {key} is missing in {lang}"
                );
            }
        }
    }
}

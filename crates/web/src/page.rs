//! Pagination of the list routes: `?limit=N` (default 100, at most 1 000) and
//! `?after=CURSOR`, the `next` of the page before. A list answers its object as before
//! (`{"alerts": [...]}` ...) with one field more, `next`: the cursor of the following page,
//! `null` on the last. A cursor is the sort key of the last row given (`N.TEXT`), so a row
//! added or gone between two pages neither repeats nor skips the others.

use std::cmp::Ordering;

use crate::ApiError;

/// Rows a page has when the caller does not say.
pub const LIMIT_DEFAULT: usize = 100;
/// Rows a page has at most.
pub const LIMIT_MAX: usize = 1_000;

/// Where a row sorts in its list: a number, then a text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub i64, pub String);

impl Cursor {
    pub fn text(&self) -> String {
        format!("{}.{}", self.0, self.1)
    }

    pub fn parse(text: &str) -> Result<Cursor, ApiError> {
        text.split_once('.')
            .and_then(|(n, s)| Some(Cursor(n.parse().ok()?, s.to_owned())))
            .ok_or_else(|| ApiError::bad_request("after: the `next` of the page before"))
    }
}

/// One page asked for.
#[derive(Clone, Debug)]
pub struct Page {
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl Page {
    /// From the query's `limit` and `after` (400 naming the field when out of bounds).
    pub fn of(limit: Option<usize>, after: Option<&str>) -> Result<Page, ApiError> {
        let limit = limit.unwrap_or(LIMIT_DEFAULT);
        if !(1..=LIMIT_MAX).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit: 1 to {LIMIT_MAX}, not {limit}"
            )));
        }
        Ok(Page {
            limit,
            after: after.map(Cursor::parse).transpose()?,
        })
    }

    /// The page of `rows` (in the order of `key`, ascending) after the cursor, and the
    /// cursor of the next page when there are more.
    pub fn take<T>(
        &self,
        rows: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> Cursor,
    ) -> (Vec<T>, Option<String>) {
        let mut out = Vec::new();
        let mut more = false;
        for row in rows {
            if let Some(after) = &self.after
                && key(&row).cmp(after) != Ordering::Greater
            {
                continue;
            }
            if out.len() == self.limit {
                more = true;
                break;
            }
            out.push(row);
        }
        let next = more.then(|| out.last().map(|r| key(r).text())).flatten();
        (out, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_overlap() {
        let rows: Vec<i64> = (1..=5).collect();
        let key = |r: &i64| Cursor(*r, String::new());
        let first = Page::of(Some(2), None).unwrap();
        let (a, next) = first.take(rows.clone(), key);
        assert_eq!((a, next.as_deref()), (vec![1, 2], Some("2.")));
        let second = Page::of(Some(2), next.as_deref()).unwrap();
        let (b, next) = second.take(rows.clone(), key);
        assert_eq!(b, vec![3, 4]);
        let (c, next) = Page::of(Some(2), next.as_deref()).unwrap().take(rows, key);
        assert_eq!((c, next), (vec![5], None));
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        assert!(Page::of(Some(0), None).is_err());
        assert!(Page::of(Some(1001), None).is_err());
        assert!(Page::of(None, Some("x")).is_err());
        assert_eq!(
            Page::of(None, Some("-3.a.b")).unwrap().after,
            Some(Cursor(-3, "a.b".into()))
        );
    }
}

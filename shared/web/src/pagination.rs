//! Cursor pagination with a capped page size. Lists come back as
//! `{"items": [...], "next": cursor-or-null}`; the cursor is the id of the
//! last item (UUIDv7 ids sort by creation). A `limit` above [`MAX_PAGE`] is
//! served as [`MAX_PAGE`] (the `next` cursor leads on); 0, negative numbers
//! and non-numbers are a 400 naming `limit`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_PAGE: u64 = 100;
pub const MAX_PAGE: u64 = 1_000;

/// Raw paging parameters from the query string (strings, so that a bad value
/// is reported with its name instead of a generic parse error).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Page size, 1 to 1000 (default 100); larger values get 1000.
    pub limit: Option<String>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// Validated paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub after: Option<Uuid>,
}

impl PageParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if n >= 1 => n.min(MAX_PAGE),
                // Too many digits for a u64 is still a number above the cap.
                Err(_)
                    if raw.bytes().all(|b| b.is_ascii_digit())
                        && raw.bytes().any(|b| b != b'0') =>
                {
                    MAX_PAGE
                }
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!(
                            "must be a whole number of at least 1 (pages hold at most {MAX_PAGE})"
                        ),
                    ));
                }
            },
        };
        let after =
            match self.cursor.as_deref() {
                None | Some("") => None,
                Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| {
                    ApiError::invalid("cursor", "is not a cursor this API returned")
                })?),
            };
        Ok(Page { limit, after })
    }
}

/// One page of a list.
#[derive(Debug, Serialize, Deserialize)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Paginated<T> {
    /// Builds a page from up to `page.limit + 1` rows fetched in id order.
    pub fn from_rows(mut rows: Vec<T>, page: Page, id: impl Fn(&T) -> Uuid) -> Paginated<T> {
        let more = rows.len() as u64 > page.limit;
        rows.truncate(page.limit as usize);
        let next = if more {
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Paginated { items: rows, next }
    }
}

/// A page of views from up to `page.limit + 1` rows fetched in id order.
pub fn paginate<M, T>(
    rows: Vec<M>,
    page: Page,
    id: impl Fn(&M) -> Uuid,
    view: impl Fn(M) -> T,
) -> Paginated<T> {
    let page = Paginated::from_rows(rows, page, id);
    Paginated {
        items: page.items.into_iter().map(view).collect(),
        next: page.next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_are_not_a_positive_number_name_the_field() {
        for bad in ["0", "000", "ten", "-1", "+", "1.5", " 5", "0x10"] {
            let err = PageParams {
                limit: Some(bad.into()),
                cursor: None,
            }
            .page()
            .expect_err(bad);
            assert!(
                matches!(err, ApiError::InvalidField { ref field, .. } if field == "limit"),
                "{bad}"
            );
        }
        assert_eq!(PageParams::default().page().expect("default").limit, 100);
    }

    #[test]
    fn limits_above_the_cap_are_served_as_the_cap() {
        let limit = |raw: &str| {
            PageParams {
                limit: Some(raw.into()),
                cursor: None,
            }
            .page()
            .expect(raw)
            .limit
        };
        assert_eq!(limit("1"), 1);
        assert_eq!(limit("1000"), MAX_PAGE);
        assert_eq!(limit("1001"), MAX_PAGE);
        assert_eq!(limit("100000"), MAX_PAGE);
        assert_eq!(limit("99999999999999999999999999"), MAX_PAGE);
        // A page asked for as 100000 holds 1000 items and leads on.
        let ids: Vec<Uuid> = (0..=MAX_PAGE).map(|_| Uuid::now_v7()).collect();
        let page = PageParams {
            limit: Some("100000".into()),
            cursor: None,
        }
        .page()
        .expect("capped");
        let p = Paginated::from_rows(ids.clone(), page, |u| *u);
        assert_eq!(p.items.len(), 1000);
        assert_eq!(p.next, Some(ids[999].to_string()));
    }

    #[test]
    fn next_is_set_only_when_more_rows_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page {
            limit: 2,
            after: None,
        };
        let p = Paginated::from_rows(ids.clone(), page, |u| *u);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.next, Some(ids[1].to_string()));
        let p = Paginated::from_rows(ids[..2].to_vec(), page, |u| *u);
        assert_eq!(p.next, None);
    }
}

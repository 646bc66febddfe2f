//! What every list page shares: search, one filter, sorting by column, and paging.

use crate::error::AppError;

pub const PAGE_SIZE: i64 = 50;

/// The state of a list page, and the links that change it.
pub struct Listing {
    pub base: &'static str,
    pub q: String,
    pub filter_name: &'static str,
    pub filter: String,
    pub sort: String,
    pub dir: String,
    pub page_no: i64,
    pub pages: i64,
    pub total: i64,
    pub first_shown: i64,
    pub last_shown: i64,
    /// Further filters the links keep: query name, value, and what the page says it shows.
    pub kept: Vec<(&'static str, String, String)>,
}

/// The raw query of a list page.
#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    pub q: Option<String>,
    pub page: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
}

pub struct Paging {
    pub q: String,
    pub sort: String,
    pub descending: bool,
    pub page_no: i64,
}

impl Paging {
    pub fn offset(&self) -> i64 {
        (self.page_no - 1) * PAGE_SIZE
    }
}

/// Parses search text, sort column (checked by `known`), direction and page number.
pub fn parse(q: &ListQuery, default_sort: &str, known: &[&str]) -> Result<Paging, AppError> {
    let sort = match q.sort.as_deref().unwrap_or("") {
        "" => default_sort.to_string(),
        s if known.contains(&s) => s.to_string(),
        s => {
            return Err(AppError::BadRequest(format!(
                "cannot sort by '{s}': use {}",
                known.join(", ")
            )))
        }
    };
    let descending = match q.dir.as_deref().unwrap_or("") {
        "" => sort == default_sort,
        "asc" => false,
        "desc" => true,
        d => {
            return Err(AppError::BadRequest(format!(
                "unknown sort direction '{d}': use asc or desc"
            )))
        }
    };
    let page_no = match q.page.as_deref().unwrap_or("") {
        "" => 1,
        p => match p.parse::<i64>() {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                return Err(AppError::BadRequest(format!(
                    "page '{p}' is not a page number"
                )))
            }
        },
    };
    let text =
        q.q.as_deref()
            .unwrap_or_default()
            .trim()
            .chars()
            .take(200)
            .collect();
    Ok(Paging {
        q: text,
        sort,
        descending,
        page_no,
    })
}

impl Listing {
    pub fn new(
        base: &'static str,
        paging: &Paging,
        filter_name: &'static str,
        filter: String,
        total: i64,
        shown: usize,
    ) -> Listing {
        let shown = shown as i64;
        let offset = paging.offset();
        Listing {
            base,
            q: paging.q.clone(),
            filter_name,
            filter,
            sort: paging.sort.clone(),
            dir: if paging.descending { "desc" } else { "asc" }.to_string(),
            page_no: paging.page_no,
            pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
            total,
            first_shown: if shown == 0 { 0 } else { offset + 1 },
            last_shown: offset + shown,
            kept: Vec::new(),
        }
    }

    /// The `expires_within` filter as a kept filter (certificates and tokens).
    pub fn expires_within(days: u32) -> (&'static str, String, String) {
        (
            "expires_within",
            days.to_string(),
            format!("Active, expiring within {days} days"),
        )
    }

    /// The list also keeps these filters in its links.
    pub fn keeping(mut self, kept: Vec<(&'static str, String, String)>) -> Listing {
        self.kept = kept;
        self
    }

    pub fn filtered(&self) -> bool {
        !self.q.is_empty() || !self.filter.is_empty() || !self.kept.is_empty()
    }

    fn href(&self, sort: &str, dir: &str, page_no: i64) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if !self.q.is_empty() {
            params.push(("q", self.q.clone()));
        }
        if !self.filter.is_empty() {
            params.push((self.filter_name, self.filter.clone()));
        }
        for (name, value, _) in &self.kept {
            params.push((name, value.clone()));
        }
        params.push(("sort", sort.to_string()));
        params.push(("dir", dir.to_string()));
        if page_no > 1 {
            params.push(("page", page_no.to_string()));
        }
        format!(
            "{}?{}",
            self.base,
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    }

    /// The link of a column heading: sorts by it, or flips the direction if it is the
    /// current sort.
    pub fn sort_href(&self, column: &str) -> String {
        let dir = if self.sort == column && self.dir == "asc" {
            "desc"
        } else {
            "asc"
        };
        self.href(column, dir, 1)
    }

    pub fn aria_sort(&self, column: &str) -> &'static str {
        match (self.sort == column, self.dir.as_str()) {
            (true, "asc") => "ascending",
            (true, _) => "descending",
            _ => "none",
        }
    }

    pub fn page_href(&self, page_no: i64) -> String {
        self.href(&self.sort, &self.dir, page_no)
    }
}

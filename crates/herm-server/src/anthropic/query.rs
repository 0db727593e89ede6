//! CMA's query strings: arrays as `key[]=a&key[]=b`, ranges as `created_at[gte]=<RFC 3339>`,
//! booleans as `true`/`false`. Unknown keys are refused, so no filter is silently ignored.

use crate::error::{ApiError, ApiResult};
use herm_cma::agents::Range;

pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>, known: &[&str]) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
            .map_err(|_| ApiError::validation("the query string is malformed"))?;
        for (k, _) in &pairs {
            let base = k.split('[').next().unwrap_or_default();
            if !known.contains(&base) {
                return Err(ApiError::validation(format!("`{k}`: unknown query parameter")));
            }
        }
        Ok(Self(pairs))
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        let bracket = format!("{key}[]");
        self.0.iter().filter(|(k, _)| *k == bracket || k == key).map(|(_, v)| v.clone()).collect()
    }

    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.one(key) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::validation(format!("`{key}` must be `true` or `false`"))),
        }
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        self.one(key)
            .map(|v| v.parse().map_err(|_| ApiError::validation(format!("`{key}` must be an integer"))))
            .transpose()
    }

    pub fn limit(&self) -> ApiResult<Option<usize>> {
        self.one("limit")
            .map(|v| v.parse().map_err(|_| ApiError::validation("`limit` must be a positive integer")))
            .transpose()
    }

    pub fn page(&self) -> ApiResult<herm_cma::PageQuery> {
        Ok(herm_cma::PageQuery { limit: self.limit()?, page: self.one("page").map(str::to_owned) })
    }

    /// `field[gt|gte|lt|lte]=<RFC 3339>`.
    pub fn range(&self, field: &str) -> ApiResult<Range> {
        let at = |op: &str| -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
            self.one(&format!("{field}[{op}]"))
                .map(|v| {
                    chrono::DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|_| ApiError::validation(format!("`{field}[{op}]` must be an RFC 3339 time")))
                })
                .transpose()
        };
        Ok(Range { gt: at("gt")?, gte: at("gte")?, lt: at("lt")?, lte: at("lte")? })
    }
}

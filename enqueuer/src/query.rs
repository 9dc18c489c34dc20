//! Query strings of list endpoints: the parameters every list shares, parsed the same way.

use crate::error::ApiError;

/// The query's parameters, in order. An empty value means "not given", as HTML forms and
/// generic clients send it.
pub fn pairs(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A page size: 1–100.
pub fn limit(v: &str) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "parameter_invalid",
                "limit",
                "limit must be an integer from 1 to 100",
            )
        })
}

pub fn unknown(name: &str) -> ApiError {
    ApiError::invalid(
        "parameter_unknown",
        name,
        format!("Unknown query parameter `{name}`."),
    )
}

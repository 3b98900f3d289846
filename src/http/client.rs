//! What an HTTP request says about its client, for admission: the bearer token, the page's
//! Origin and Referer, and the decoded query.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode, Uri};

use super::ApiError;
use crate::auth::request::parse_query;
use crate::auth::{Action, Admission, Denial, Entry, Request};

/// The credentials and page of one request.
#[derive(Debug, Clone, Default)]
pub struct ClientFacts {
    pub bearer: Option<String>,
    pub origin: Option<String>,
    pub referer: Option<String>,
    pub query: Vec<(String, String)>,
    pub path: String,
}

impl ClientFacts {
    pub fn of(uri: &Uri, headers: &HeaderMap) -> ClientFacts {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        ClientFacts {
            bearer: bearer(headers),
            origin: text(header::ORIGIN),
            referer: text(header::REFERER),
            query: uri.query().map(parse_query).unwrap_or_default(),
            path: uri.path().to_string(),
        }
    }
}

/// `Authorization: Bearer TOKEN` (the scheme in any case).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string()).filter(|t| !t.is_empty())
}

/// A refusal as HTTP: 401 or 403 with `{"error": ...}`.
pub fn refusal(denial: &Denial) -> ApiError {
    let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
    ApiError::new(status, denial.to_string())
}

/// Asks `admission` whether this HTTP request may `action` on `stream`; a refusal is the
/// error to answer with (before any upgrade, session or subscription exists). On success, how
/// it was allowed.
pub async fn admit(
    admission: &Admission,
    action: Action,
    entry: Entry,
    stream: &str,
    ip: IpAddr,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<crate::auth::Method, ApiError> {
    let facts = ClientFacts::of(uri, headers);
    let req = Request {
        action,
        entry,
        stream,
        path: &facts.path,
        query: &facts.query,
        bearer: facts.bearer.as_deref(),
        ip,
        origin: facts.origin.as_deref(),
        referer: facts.referer.as_deref(),
    };
    admission.admit(&req).await.map_err(|d| refusal(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_a_request() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer  t0k ".parse().unwrap());
        h.insert(header::ORIGIN, "https://school.example".parse().unwrap());
        let f = ClientFacts::of(&"/live/room1.flv?sign=a%2Fb&expires=9".parse().unwrap(), &h);
        assert_eq!(f.bearer.as_deref(), Some("t0k"));
        assert_eq!(f.origin.as_deref(), Some("https://school.example"));
        assert_eq!(f.path, "/live/room1.flv");
        assert_eq!(f.query[0], ("sign".to_string(), "a/b".to_string()));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic eDp5".parse().unwrap());
        assert_eq!(bearer(&basic), None);
    }
}

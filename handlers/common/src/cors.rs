//! CORS for the API's answers: the functions behind API Gateway's Lambda proxy integration
//! set the headers themselves (the mock `OPTIONS` of each resource answers preflights).

use aws_lambda_events::http::{HeaderMap, HeaderValue};

/// `ALLOWED_ORIGIN`: comma-separated origins, trailing slashes dropped; `*` for any.
pub fn parse_origins(s: &str) -> Vec<String> {
    s.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect()
}

/// The CORS headers of an answer: the request's `Origin` when it is allowed (else the first
/// allowed origin, which a browser will refuse to match), the methods and `Content-Type`.
pub fn headers(allowed: &[String], request: &HeaderMap, methods: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let origin = request
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(|o| o.trim_end_matches('/'));
    let allow = if allowed.iter().any(|o| o == "*") {
        Some("*".to_string())
    } else if let Some(o) = origin.filter(|o| allowed.iter().any(|a| a == o)) {
        Some(o.to_string())
    } else {
        allowed.first().cloned()
    };
    if let Some(v) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        h.insert("access-control-allow-origin", v);
        h.insert("vary", HeaderValue::from_static("Origin"));
    }
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(methods),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Content-Type"),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_origin_is_echoed_and_another_is_not() {
        let allowed = parse_origins("https://a.example/, https://b.example");
        assert_eq!(allowed, ["https://a.example", "https://b.example"]);
        let mut request = HeaderMap::new();
        request.insert("origin", HeaderValue::from_static("https://b.example"));
        let h = headers(&allowed, &request, "OPTIONS,POST");
        assert_eq!(h["access-control-allow-origin"], "https://b.example");
        request.insert("origin", HeaderValue::from_static("https://evil.example"));
        let h = headers(&allowed, &request, "OPTIONS,POST");
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        let any = headers(&parse_origins("*"), &request, "OPTIONS,POST");
        assert_eq!(any["access-control-allow-origin"], "*");
        assert_eq!(any["access-control-allow-methods"], "OPTIONS,POST");
    }
}

//! Response headers that keep browsers from misusing what the API serves: `nosniff` on
//! every answer, and on the dashboard a Content-Security-Policy that allows only the
//! page's own inline script and style (by their SHA-256, computed from the embedded page
//! when the router is built) and no framing; artifact downloads get a policy that allows
//! nothing at all, so a hostile artifact opened in a tab runs nothing.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The dashboard page, embedded in the binary.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// Sets `X-Content-Type-Options: nosniff` on every response that lacks it.
pub async fn nosniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    response
}

/// The dashboard's Content-Security-Policy.
pub fn dashboard_csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            inline_hashes(DASHBOARD_HTML, "script"),
            inline_hashes(DASHBOARD_HTML, "style"),
        );
        HeaderValue::from_str(&policy).expect("a CSP of ASCII hashes is a valid header value")
    })
}

/// The Content-Security-Policy of an artifact download: nothing may run or load.
pub const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// `'sha256-…'` of each inline `<tag>…</tag>` element's text in `html`, space-separated
/// (`'none'` when there is none). Only bare `<script>` / `<style>` openings are inline
/// elements in the dashboard; the page has no attributes on them.
fn inline_hashes(html: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        hashes.push(format!("'sha256-{encoded}'"));
        rest = &body[end + close.len()..];
    }
    if hashes.is_empty() {
        "'none'".to_string()
    } else {
        hashes.join(" ")
    }
}

/// `Content-Disposition: attachment` for `name`: an ASCII `filename` for old clients
/// (anything else replaced by `_`) and the exact name as `filename*=UTF-8''…` (RFC 6266,
/// RFC 8187).
pub fn attachment(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        // RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." /
        // "^" / "_" / "`" / "|" / "~"; everything else percent-encoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let value = format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}");
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_cover_each_inline_element() {
        let html = "<style>a{}</style><script>1</script><p></p><script>2</script>";
        let one = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"1"));
        let two = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"2"));
        assert_eq!(
            inline_hashes(html, "script"),
            format!("'sha256-{one}' 'sha256-{two}'")
        );
        assert_eq!(inline_hashes("<p></p>", "script"), "'none'");
    }

    #[test]
    fn the_dashboard_has_one_inline_script_and_one_style() {
        assert_eq!(
            inline_hashes(DASHBOARD_HTML, "script")
                .matches("sha256-")
                .count(),
            1
        );
        assert_eq!(
            inline_hashes(DASHBOARD_HTML, "style")
                .matches("sha256-")
                .count(),
            1
        );
        assert!(
            !DASHBOARD_HTML.contains("<script "),
            "a script tag with attributes"
        );
    }

    #[test]
    fn attachment_names_are_encoded() {
        let value = attachment("résumé \"final\".pdf");
        assert_eq!(
            value.to_str().expect("ASCII"),
            "attachment; filename=\"r_sum_ _final_.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        let crlf = attachment("a\r\nSet-Cookie: x");
        assert!(!crlf.to_str().expect("ASCII").contains('\n'));
    }
}

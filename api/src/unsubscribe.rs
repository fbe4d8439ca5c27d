//! The open unsubscribe routes a message's `List-Unsubscribe` header links to (SPEC §7.2):
//!
//! - `GET /u/{token}`: a small page naming the address, with a button that posts back. A
//!   `GET` changes nothing: mail scanners and link previews fetch links nobody clicked.
//! - `POST /u/{token}`: unsubscribes the address (reason `unsubscribed`) and answers 200
//!   with a page saying so. This is RFC 8058's one-click request (form-encoded
//!   `List-Unsubscribe=One-Click`, sent by the recipient's mail provider) and the page's
//!   button alike; the body is not required, the token is the authority.
//!
//! They live outside `/v1`: no bearer token, no JSON body, and no same-origin rule (the
//! one-click POST comes from the mail provider; see [`crate::origin`]). A token that does
//! not verify under the `secrets` key, and every token when no key is configured, gets the
//! same 404 as an unknown route, saying nothing of why.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use drover_queue::suppress::{normalise_email, verify_unsubscribe_token};
use drover_queue::{Suppression, SuppressionReason};

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// Longer tokens are not ones this server made (an address is at most 254 bytes).
const MAX_TOKEN_LEN: usize = 512;

/// The address `token` names, or the 404 of an unknown route.
fn address(state: &AppState, token: &str) -> Result<String, ApiError> {
    let key = state.config.secret_key.as_ref().ok_or_else(no_such_route)?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(no_such_route());
    }
    verify_unsubscribe_token(key.bytes(), token)
        .and_then(|email| normalise_email(&email))
        .ok_or_else(no_such_route)
}

fn no_such_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// Text for an HTML page: `& < > " '` escaped.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: no script, no style, nothing loaded; the only form posts back here. The URL
/// holds the token, so no `Referer` carries it anywhere, and nothing caches the page.
fn page(title: &str, body: String) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>\n"
    );
    let headers = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (headers, Html(html)).into_response()
}

fn unsubscribed_page(email: &str) -> Response {
    page(
        "You are unsubscribed",
        format!(
            "<p>No more messages will be sent to <strong>{}</strong>.</p>",
            escape_html(email)
        ),
    )
}

/// The unsubscribe page: the address, and a button that unsubscribes it.
#[utoipa::path(get, path = "/u/{token}", tag = "suppressions", security(()),
    params(("token" = String, Path, description = "The token of the message's unsubscribe link")),
    responses(
        (status = 200, description = "A page naming the address, with a button that unsubscribes it (or saying it is unsubscribed)", content_type = "text/html"),
        (status = 404, description = "Not a token of this server", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let email = address(&state, &token)?;
    let suppressed = !state
        .store
        .suppressed(std::slice::from_ref(&email))
        .await?
        .is_empty();
    if suppressed {
        return Ok(unsubscribed_page(&email));
    }
    Ok(page(
        "Unsubscribe",
        format!(
            "<p>Stop all messages to <strong>{}</strong>?</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" \
             value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
            escape_html(&email)
        ),
    ))
}

/// Unsubscribe (RFC 8058 one-click: `List-Unsubscribe=One-Click`, form-encoded).
#[utoipa::path(post, path = "/u/{token}", tag = "suppressions", security(()),
    params(("token" = String, Path, description = "The token of the message's unsubscribe link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`List-Unsubscribe=One-Click` (not required)"),
    responses(
        (status = 200, description = "Unsubscribed (now, or before)", content_type = "text/html"),
        (status = 404, description = "Not a token of this server", body = ErrorBody),
    ))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let email = address(&state, &token)?;
    let added = state
        .store
        .suppress(&Suppression {
            email: email.clone(),
            reason: SuppressionReason::Unsubscribed,
            note: None,
            created_at: drover_queue::job::from_millis(Utc::now().timestamp_millis()),
        })
        .await?;
    if added {
        tracing::info!(target: "drover_api::unsubscribe", "an address unsubscribed");
    }
    Ok(unsubscribed_page(&email))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("ann@example.com"), "ann@example.com");
    }
}

//! Who may talk to the API from a browser: the `Host` check (against DNS rebinding) and
//! the cross-site check on state-changing requests (against CSRF).
//!
//! drover runs without a token by default, on 127.0.0.1. Any page the operator opens can
//! send "simple" requests there, and a page on a name that re-resolves to 127.0.0.1 can
//! even read the answers. So:
//! - `Host` must name this server: a loopback address or `localhost` when bound to
//!   loopback; the bound address when bound to one; any address literal when bound to all
//!   (`0.0.0.0`, `[::]`); or a name in `api.allowed_hosts`. A rebinding page sends its own
//!   name, which is none of these. A request without `Host` (HTTP/1.0, in-process) is not
//!   from a browser and passes.
//! - A request that is not `GET`/`HEAD`/`OPTIONS` must come from this origin: browsers
//!   send `Sec-Fetch-Site`, which must be `same-origin` (or `none`: typed by the user);
//!   without it, `Origin`, when present, must be this server. A page on another port of
//!   127.0.0.1 is `same-site`, and refused too. Clients that send neither (the CLI, curl)
//!   pass; the token, when set, is their gate. The unsubscribe routes (`/u/{token}`) are
//!   exempt: their one-click POST comes from mail providers.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::{ApiError, AppState};

pub async fn guard(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let config = &state.config;
    let host = header_text(request.headers(), header::HOST.as_str())?;
    if let Some(host) = host {
        if !host_allowed(host, config.bound, &config.allowed_hosts) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                format!(
                    "Host: `{}` is not a name this server answers to (add it to \
                     api.allowed_hosts)",
                    printable(host)
                ),
            ));
        }
    }
    if !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && !is_unsubscribe(request.uri().path())
    {
        cross_site_check(request.headers(), host, &config.allowed_hosts)?;
    }
    Ok(next.run(request).await)
}

/// `/u/{token}`: the one-click unsubscribe POST (RFC 8058) comes from the recipient's mail
/// provider, cross-site by nature. It needs no cross-site check: it only suppresses the
/// address its token names, which is what anyone holding the link may do.
fn is_unsubscribe(path: &str) -> bool {
    path.strip_prefix("/u/")
        .is_some_and(|token| !token.is_empty() && !token.contains('/'))
}

/// A header's value as text; a value that is not visible ASCII is refused, naming it.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name}: not a valid header value"))),
    }
}

fn cross_site_check(
    headers: &HeaderMap,
    host: Option<&str>,
    allowed_hosts: &[String],
) -> Result<(), ApiError> {
    let refused = |message: String| ApiError::new(StatusCode::FORBIDDEN, "cross_site", message);
    if let Some(site) = header_text(headers, "sec-fetch-site")? {
        return match site.to_ascii_lowercase().as_str() {
            "same-origin" | "none" => Ok(()),
            _ => Err(refused(format!(
                "Sec-Fetch-Site: `{}`: requests that change state are accepted only from \
                 this server's own pages",
                printable(site)
            ))),
        };
    }
    let Some(origin) = header_text(headers, header::ORIGIN.as_str())? else {
        return Ok(());
    };
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    let same = match (authority, host) {
        (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
        _ => false,
    };
    let listed = authority
        .map(|authority| listed(host_name(authority), allowed_hosts))
        .unwrap_or(false);
    if same || listed {
        Ok(())
    } else {
        Err(refused(format!(
            "Origin: `{}` is not this server: requests that change state are accepted \
             only from this server's own pages",
            printable(origin)
        )))
    }
}

/// Whether `host` (a `Host` value, port optional) names this server.
pub(crate) fn host_allowed(
    host: &str,
    bound: Option<SocketAddr>,
    allowed_hosts: &[String],
) -> bool {
    let name = host_name(host);
    if listed(name, allowed_hosts) {
        return true;
    }
    let bound_ip = bound.map(|addr| addr.ip());
    let on_loopback = bound_ip.is_none_or(|ip| ip.is_loopback());
    let on_all = bound_ip.is_some_and(|ip| ip.is_unspecified());
    let literal = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    match literal.parse::<IpAddr>() {
        Ok(ip) => on_all || (on_loopback && ip.is_loopback()) || bound_ip == Some(ip),
        Err(_) => (on_loopback || on_all) && name.eq_ignore_ascii_case("localhost"),
    }
}

/// The `host[:port]` of an absolute `http(s)://` URL (user info dropped), for
/// `api.allowed_hosts`: the API must answer to the host its public URL names (the
/// unsubscribe links of `mail.public_url`). `None` for anything else.
pub fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let name = host_name(host);
    (!name.is_empty() && !name.starts_with(':')).then(|| host.to_string())
}

/// The host part of `host[:port]` / `[v6][:port]`, without a trailing dot.
fn host_name(authority: &str) -> &str {
    let name = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => authority,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

fn listed(name: &str, allowed_hosts: &[String]) -> bool {
    allowed_hosts
        .iter()
        .any(|allowed| host_name(allowed).eq_ignore_ascii_case(name))
}

/// A header value for an error message: at most 100 characters.
fn printable(value: &str) -> String {
    value.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str) -> Option<SocketAddr> {
        Some(addr.parse().expect("a socket address"))
    }

    #[test]
    fn loopback_binds_answer_to_loopback_names_only() {
        let bound = at("127.0.0.1:8080");
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert!(host_allowed(ok, bound, &[]), "{ok}");
        }
        for refused in [
            "evil.test:8080",
            "192.168.1.5:8080",
            "localhost.evil.test",
            "[::1",
        ] {
            assert!(!host_allowed(refused, bound, &[]), "{refused}");
        }
        assert!(host_allowed(
            "drover.example.com:443",
            bound,
            &["drover.example.com".into()]
        ));
        assert!(host_allowed(
            "Drover.Example.com.",
            bound,
            &["drover.example.com:8080".into()]
        ));
    }

    #[test]
    fn public_urls_give_their_host() {
        for (url, host) in [
            ("https://drover.example.com", Some("drover.example.com")),
            ("https://drover.example.com/", Some("drover.example.com")),
            (
                "http://drover.example.com:8443/base?x#y",
                Some("drover.example.com:8443"),
            ),
            (
                "HTTPS://user:pw@Drover.Example.com/u",
                Some("Drover.Example.com"),
            ),
            ("http://[::1]:8080/", Some("[::1]:8080")),
            ("drover.example.com", None),
            ("ftp://drover.example.com", None),
            ("https:///path", None),
            ("https://:443/", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
        let host = url_host("https://drover.example.com/").expect("a host");
        assert!(host_allowed(
            "drover.example.com",
            at("127.0.0.1:8080"),
            &[host]
        ));
    }

    #[test]
    fn other_binds_answer_to_their_address_or_to_any_address_literal() {
        let one = at("10.0.0.5:8080");
        assert!(host_allowed("10.0.0.5:8080", one, &[]));
        assert!(!host_allowed("10.0.0.6:8080", one, &[]));
        assert!(!host_allowed("localhost:8080", one, &[]));
        let all = at("0.0.0.0:8080");
        assert!(host_allowed("10.0.0.6:8080", all, &[]));
        assert!(host_allowed("[fe80::1]:8080", all, &[]));
        assert!(host_allowed("localhost:8080", all, &[]));
        assert!(!host_allowed("evil.test:8080", all, &[]));
    }
}

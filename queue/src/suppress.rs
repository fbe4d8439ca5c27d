//! Who must not be written to (SPEC §7.2): the global suppression list (unsubscribed,
//! bounced, complained, or added by an operator), the last contact of each address by any
//! campaign, the one form addresses are kept in ([`normalise_email`]), and the unsubscribe
//! token a message's `List-Unsubscribe` link carries ([`unsubscribe_token`]).
//!
//! The store keeps both lists ([`crate::store::Suppressions`]); addresses are compared as
//! stored, so every caller passes them through [`normalise_email`] first.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::job::JobId;

/// The longest address kept (RFC 5321's path limit less its angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// The one form an address is kept and compared in: trimmed and lowercased, with exactly
/// one `@` between a non-empty local part and a non-empty domain, no whitespace or control
/// characters, at most [`MAX_EMAIL_LEN`] bytes. `None` for anything else.
///
/// Lowercasing the local part is not what RFC 5321 says, but it is what every large mail
/// provider does, and a suppression that misses `Ann@` because `ann@` unsubscribed would be
/// the worse mistake.
pub fn normalise_email(s: &str) -> Option<String> {
    let email = s.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

/// Why an address is suppressed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// Through an unsubscribe link or one-click unsubscribe.
    Unsubscribed,
    /// The address bounced.
    Bounced,
    /// The recipient reported a message as spam.
    Complained,
    /// Added by an operator.
    Manual,
}

impl SuppressionReason {
    /// The stored name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::Bounced => "bounced",
            SuppressionReason::Complained => "complained",
            SuppressionReason::Manual => "manual",
        }
    }

    /// The reason a stored name names.
    pub fn parse(name: &str) -> Option<SuppressionReason> {
        Some(match name {
            "unsubscribed" => SuppressionReason::Unsubscribed,
            "bounced" => SuppressionReason::Bounced,
            "complained" => SuppressionReason::Complained,
            "manual" => SuppressionReason::Manual,
            _ => return None,
        })
    }
}

/// An address no campaign writes to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// The normalised address ([`normalise_email`]).
    pub email: String,
    pub reason: SuppressionReason,
    /// Free text: who added it, or the bounce's diagnostic.
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The last time any campaign wrote to an address, for `recontact_after_days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The normalised address ([`normalise_email`]).
    pub email: String,
    /// The job that sent the message.
    pub job_id: JobId,
    pub at: DateTime<Utc>,
}

/// What the token's MAC covers, so that a MAC made under the key for another purpose is
/// never a valid unsubscribe token.
const TOKEN_CONTEXT: &[u8] = b"drover-unsubscribe:";
/// Bytes of the MAC a token keeps: 128 bits is beyond guessing.
const TOKEN_MAC_LEN: usize = 16;

fn token_mac(key: &[u8; 32], email: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut data = Vec::with_capacity(TOKEN_CONTEXT.len() + email.len());
    data.extend_from_slice(TOKEN_CONTEXT);
    data.extend_from_slice(email.as_bytes());
    hmac::sign(&key, &data)
}

/// The token of an unsubscribe link for `email`: `base64url(email) "." base64url(MAC)`, no
/// padding, the MAC being the first 16 bytes of HMAC-SHA256 under `key` (the `secrets` key)
/// of `drover-unsubscribe:` + `email`. Anyone holding the link can unsubscribe that
/// address and no other; the address is readable in it, as it is in the message itself.
pub fn unsubscribe_token(key: &[u8; 32], email: &str) -> String {
    let mac = token_mac(key, email);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(email.as_bytes()),
        URL_SAFE_NO_PAD.encode(&mac.as_ref()[..TOKEN_MAC_LEN])
    )
}

/// The address a token made by [`unsubscribe_token`] under `key` names; `None` for any
/// other text. The MAC is compared in constant time. (`ring::hmac::verify` compares whole
/// tags only; the token keeps 16 bytes, so the comparison is `subtle`'s.)
pub fn verify_unsubscribe_token(key: &[u8; 32], token: &str) -> Option<String> {
    let (email, mac) = token.split_once('.')?;
    let email = String::from_utf8(URL_SAFE_NO_PAD.decode(email).ok()?).ok()?;
    let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
    if given.len() != TOKEN_MAC_LEN {
        return None;
    }
    let expected = token_mac(key, &email);
    let same: bool = expected.as_ref()[..TOKEN_MAC_LEN].ct_eq(&given).into();
    same.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_or_refused() {
        for (given, expected) in [
            ("ann@example.com", Some("ann@example.com")),
            ("  Ann.Lee+x@Example.COM \n", Some("ann.lee+x@example.com")),
            ("ÄNN@exämple.com", Some("änn@exämple.com")),
            ("", None),
            ("ann", None),
            ("@example.com", None),
            ("ann@", None),
            ("ann@@example.com", None),
            ("ann@ex@ample.com", None),
            ("ann lee@example.com", None),
            ("ann@exa\tmple.com", None),
            ("ann\u{0}@example.com", None),
            ("ann\u{7f}@example.com", None),
        ] {
            assert_eq!(normalise_email(given).as_deref(), expected, "{given:?}");
        }
        let longest = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
        assert_eq!(longest.len(), MAX_EMAIL_LEN);
        assert!(normalise_email(&longest).is_some());
        assert!(normalise_email(&format!("a{longest}")).is_none());
    }

    #[test]
    fn reasons_round_trip_their_names() {
        for reason in [
            SuppressionReason::Unsubscribed,
            SuppressionReason::Bounced,
            SuppressionReason::Complained,
            SuppressionReason::Manual,
        ] {
            assert_eq!(SuppressionReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).expect("serializes"),
                serde_json::json!(reason.as_str())
            );
        }
        assert_eq!(SuppressionReason::parse("other"), None);
    }

    #[test]
    fn tokens_verify_under_their_key_only() {
        let key = [7u8; 32];
        let token = unsubscribe_token(&key, "ann@example.com");
        assert!(!token.contains('='), "no padding: {token}");
        let (email, mac) = token.split_once('.').expect("two parts");
        assert_eq!(email, "YW5uQGV4YW1wbGUuY29t");
        assert_eq!(mac.len(), 22, "16 bytes, base64url without padding");
        assert_eq!(
            verify_unsubscribe_token(&key, &token).as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(verify_unsubscribe_token(&[8u8; 32], &token), None);
        // Another address under the same MAC, a truncated MAC, garbage.
        let other = format!("{}.{mac}", URL_SAFE_NO_PAD.encode("bob@example.com"));
        assert_eq!(verify_unsubscribe_token(&key, &other), None);
        assert_eq!(
            verify_unsubscribe_token(&key, &token[..token.len() - 1]),
            None
        );
        for bad in ["", ".", "abc", "YW5u.", "!!.!!", "YW5u.YW5u.YW5u"] {
            assert_eq!(verify_unsubscribe_token(&key, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_is_the_documented_hmac() {
        // HMAC-SHA256(key, "drover-unsubscribe:" + email), first 16 bytes, computed apart.
        let key = [0u8; 32];
        let email = "a@b.c";
        let full = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            b"drover-unsubscribe:a@b.c",
        );
        let expected = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(email),
            URL_SAFE_NO_PAD.encode(&full.as_ref()[..16])
        );
        assert_eq!(unsubscribe_token(&key, email), expected);
    }
}

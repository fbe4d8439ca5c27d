//! Sealed session cookies (SPEC §7.3): AES-256-GCM (`ring::aead`) under a key derived from
//! the `secrets` key, a random 96-bit nonce per seal, and `user_id ‖ 0x00 ‖ site` as the
//! associated data, so a blob moved to another user or site does not open. Sealing happens
//! here, in one place, above the store: the store keeps only blobs.
//!
//! A blob is `key id (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. The key id is the first
//! byte of SHA-256(`drover-seal-key-id` ‖ key): after a rotation, [`Keyring::open`] finds the
//! key a blob was sealed under among the current and previous keys (ids may collide, one in
//! 256: every key with the id is tried), and a blob sealed under a key it does not hold says
//! so by id. Neither cookies nor keys ever show in `Debug` output or errors.
//!
//! Why a derived key and not the `secrets` key itself: the same key makes unsubscribe MACs
//! (HMAC-SHA256); HKDF-SHA256 with a purpose label keeps the two uses apart.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::profile::InvalidField;
use crate::secret::SecretKey;

/// The tag's length.
const TAG_LEN: usize = 16;
/// The HKDF salt and info that make the sealing key from the `secrets` key.
const HKDF_SALT: &[u8] = b"drover-seal-v1";
const HKDF_INFO: &[u8] = b"session-cookies";
/// The most cookies one session holds, and the largest cookie list (its JSON), in bytes.
pub const MAX_COOKIES: usize = 200;
pub const MAX_COOKIES_BYTES: usize = 64 * 1024;

/// Why a blob does not open (or a seal failed). Never holds a cookie or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "the session was sealed with another key (id {0}); configure that key as secrets.key \
         or in secrets.previous_keys"
    )]
    OtherKey(u8),
    #[error(
        "the sealed session does not authenticate: it was changed, or sealed for another \
         user or site"
    )]
    DoesNotAuthenticate,
    #[error("the sealed session is too short to be one")]
    Truncated,
    #[error("the opened session is not a cookie list")]
    NotCookies,
    #[error("the system random number generator failed")]
    Random,
}

/// One sealing key and its id.
struct SealKey {
    id: u8,
    key: LessSafeKey,
}

impl SealKey {
    fn new(secret: &SecretKey) -> SealKey {
        let id = Sha256::new()
            .chain_update(b"drover-seal-key-id")
            .chain_update(secret.bytes())
            .finalize()[0];
        // HKDF's output for AES-256-GCM is one hash long, and AES-256-GCM takes any 32
        // bytes: neither step can fail.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret.bytes());
        let okm = prk
            .expand(&[HKDF_INFO], &AES_256_GCM)
            .expect("one hash of output");
        let key = LessSafeKey::new(UnboundKey::from(okm));
        SealKey { id, key }
    }
}

fn aad(user_id: &str, site: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(user_id.len() + 1 + site.len());
    aad.extend_from_slice(user_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(site.as_bytes());
    aad
}

/// The keys sessions are sealed and opened with: the current `secrets` key (sealing) and
/// the previous ones (opening only). `Debug` shows only the key ids.
pub struct Keyring {
    current: SealKey,
    previous: Vec<SealKey>,
    random: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current_id", &self.current.id)
            .field(
                "previous_ids",
                &self.previous.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// A keyring sealing under `current`, opening under it and `previous`.
    pub fn new(current: &SecretKey, previous: &[SecretKey]) -> Keyring {
        Keyring {
            current: SealKey::new(current),
            previous: previous.iter().map(SealKey::new).collect(),
            random: SystemRandom::new(),
        }
    }

    /// The id blobs sealed now carry.
    pub fn current_id(&self) -> u8 {
        self.current.id
    }

    /// Seals `plaintext` for `user_id`'s session on `site`.
    pub fn seal(&self, user_id: &str, site: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut sealed = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(user_id, site)),
                &mut sealed,
            )
            .map_err(|_| SealError::Random)?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        blob.push(self.current.id);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a blob [`Keyring::seal`] made for `user_id` and `site`, under whichever of the
    /// keyring's keys has its id.
    pub fn open(&self, user_id: &str, site: &str, blob: &[u8]) -> Result<Vec<u8>, SealError> {
        if blob.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let id = blob[0];
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1..=NONCE_LEN]);
        let mut tried = false;
        for key in std::iter::once(&self.current).chain(&self.previous) {
            if key.id != id {
                continue;
            }
            tried = true;
            let mut buf = blob[1 + NONCE_LEN..].to_vec();
            if let Ok(plain) = key.key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(user_id, site)),
                &mut buf,
            ) {
                let len = plain.len();
                buf.truncate(len);
                return Ok(buf);
            }
        }
        Err(if tried {
            SealError::DoesNotAuthenticate
        } else {
            SealError::OtherKey(id)
        })
    }

    /// Seals a session's cookies.
    pub fn seal_cookies(
        &self,
        user_id: &str,
        site: &str,
        cookies: &Cookies,
    ) -> Result<Vec<u8>, SealError> {
        let json = serde_json::to_vec(&cookies.0).map_err(|_| SealError::NotCookies)?;
        self.seal(user_id, site, &json)
    }

    /// Opens a session's cookies.
    pub fn open_cookies(
        &self,
        user_id: &str,
        site: &str,
        blob: &[u8],
    ) -> Result<Cookies, SealError> {
        let plain = self.open(user_id, site, blob)?;
        let value: serde_json::Value =
            serde_json::from_slice(&plain).map_err(|_| SealError::NotCookies)?;
        Cookies::from_value(value).map_err(|_| SealError::NotCookies)
    }
}

/// A session's cookies: a JSON array of WebDriver cookie objects, each with a string `name`
/// and `value` (and optionally `path`, `domain`, `secure`, `httpOnly`, `expiry`,
/// `sameSite`). `Debug` shows only the cookies' names.
#[derive(Clone, PartialEq)]
pub struct Cookies(serde_json::Value);

const COOKIE_FIELDS: &[&str] = &[
    "name", "value", "path", "domain", "secure", "httpOnly", "expiry", "sameSite",
];

impl Cookies {
    /// Checks a cookie list: an array of at most [`MAX_COOKIES`] objects with a non-empty
    /// string `name` and a string `value`, no other fields than WebDriver's, no U+0000.
    /// Errors name the field (`cookies[2].value`), never a value.
    pub fn from_value(value: serde_json::Value) -> Result<Cookies, InvalidField> {
        let bad = |field: String, message: &str| InvalidField {
            field,
            message: message.into(),
        };
        let Some(list) = value.as_array() else {
            return Err(bad(
                "cookies".into(),
                "must be a JSON array of cookie objects",
            ));
        };
        if list.len() > MAX_COOKIES {
            return Err(bad("cookies".into(), "too many cookies (at most 200)"));
        }
        if crate::job::has_nul(&value) {
            return Err(bad("cookies".into(), crate::job::NUL_MESSAGE));
        }
        for (i, cookie) in list.iter().enumerate() {
            let Some(fields) = cookie.as_object() else {
                return Err(bad(format!("cookies[{i}]"), "must be an object"));
            };
            let named = fields
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| !n.is_empty());
            if !named {
                return Err(bad(
                    format!("cookies[{i}].name"),
                    "must be a non-empty string",
                ));
            }
            if !fields
                .get("value")
                .is_some_and(serde_json::Value::is_string)
            {
                return Err(bad(format!("cookies[{i}].value"), "must be a string"));
            }
            for (field, ok) in [
                (
                    "path",
                    fields.get("path").is_none_or(serde_json::Value::is_string),
                ),
                (
                    "domain",
                    fields
                        .get("domain")
                        .is_none_or(serde_json::Value::is_string),
                ),
                (
                    "sameSite",
                    fields
                        .get("sameSite")
                        .is_none_or(serde_json::Value::is_string),
                ),
                (
                    "secure",
                    fields
                        .get("secure")
                        .is_none_or(serde_json::Value::is_boolean),
                ),
                (
                    "httpOnly",
                    fields
                        .get("httpOnly")
                        .is_none_or(serde_json::Value::is_boolean),
                ),
                (
                    "expiry",
                    fields.get("expiry").is_none_or(serde_json::Value::is_u64),
                ),
            ] {
                if !ok {
                    let what = match field {
                        "secure" | "httpOnly" => "must be a boolean",
                        "expiry" => "must be a whole number of seconds since the epoch",
                        _ => "must be a string",
                    };
                    return Err(bad(format!("cookies[{i}].{field}"), what));
                }
            }
            if fields.keys().any(|k| !COOKIE_FIELDS.contains(&k.as_str())) {
                return Err(bad(
                    format!("cookies[{i}]"),
                    "unknown field (expected name, value, path, domain, secure, httpOnly, \
                     expiry, sameSite)",
                ));
            }
        }
        Ok(Cookies(value))
    }

    /// The cookie list, for the browser.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }

    pub fn into_json(self) -> serde_json::Value {
        self.0
    }

    /// How many cookies it holds.
    pub fn len(&self) -> usize {
        self.0.as_array().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .0
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(|n| n.as_str()))
            .collect();
        f.debug_struct("Cookies")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cookies() -> Cookies {
        Cookies::from_value(json!([{"name": "sid", "value": "s3cr3t-cookie", "httpOnly": true}]))
            .expect("cookies")
    }

    #[test]
    fn a_sealed_session_opens_for_its_user_and_site_only() {
        let ring = Keyring::new(&SecretKey::new([1; 32]), &[]);
        let blob = ring.seal_cookies("ann", "lever", &cookies()).expect("seal");
        assert_eq!(blob[0], ring.current_id());
        assert!(!blob.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(
            ring.open_cookies("ann", "lever", &blob).expect("open"),
            cookies()
        );
        for (user, site) in [
            ("bob", "lever"),
            ("ann", "greenhouse"),
            ("ann\0lever", ""),
            ("ann\0", "lever"),
        ] {
            assert_eq!(
                ring.open(user, site, &blob).expect_err("moved"),
                SealError::DoesNotAuthenticate,
                "{user:?} {site:?}"
            );
        }
        // Two seals of the same cookies differ (a random nonce each).
        assert_ne!(
            blob,
            ring.seal_cookies("ann", "lever", &cookies()).expect("seal")
        );
    }

    #[test]
    fn tampering_and_other_keys_are_named() {
        let old = SecretKey::new([1; 32]);
        let new = SecretKey::new([2; 32]);
        let sealed_old = Keyring::new(&old, &[])
            .seal("ann", "lever", b"x")
            .expect("seal");
        let ring = Keyring::new(&new, &[]);
        let err = ring
            .open("ann", "lever", &sealed_old)
            .expect_err("other key");
        assert_eq!(err, SealError::OtherKey(sealed_old[0]));
        assert!(err
            .to_string()
            .contains(&format!("another key (id {})", sealed_old[0])));
        // After a rotation the old key opens what it sealed.
        let rotated = Keyring::new(&new, &[old]);
        assert_eq!(
            rotated.open("ann", "lever", &sealed_old).expect("open"),
            b"x"
        );
        for i in 1..sealed_old.len() {
            let mut tampered = sealed_old.clone();
            tampered[i] ^= 0x01;
            let err = rotated
                .open("ann", "lever", &tampered)
                .expect_err("tampered");
            assert_eq!(err, SealError::DoesNotAuthenticate, "byte {i}");
            assert!(err.to_string().contains("does not authenticate"));
        }
        assert_eq!(
            rotated.open("ann", "lever", &sealed_old[..20]),
            Err(SealError::Truncated)
        );
    }

    #[test]
    fn cookie_lists_are_checked_without_repeating_values() {
        for (value, field) in [
            (json!({"name": "a"}), "cookies"),
            (json!(["x"]), "cookies[0]"),
            (json!([{"value": "v"}]), "cookies[0].name"),
            (json!([{"name": "a", "value": 1}]), "cookies[0].value"),
            (
                json!([{"name": "a", "value": "v", "secure": null}]),
                "cookies[0].secure",
            ),
            (
                json!([{"name": "a", "value": "v", "sameSite": {}}]),
                "cookies[0].sameSite",
            ),
            (
                json!([{"name": "a", "value": "v", "expiry": -1}]),
                "cookies[0].expiry",
            ),
            (
                json!([{"name": "a", "value": "v", "extra": "hidden-value"}]),
                "cookies[0]",
            ),
            (json!([{"name": "a", "value": "v\u{0}"}]), "cookies"),
        ] {
            let err = Cookies::from_value(value).expect_err("refused");
            assert_eq!(err.field, field);
            assert!(!err.message.contains("hidden-value") && !err.message.contains("v\u{0}"));
        }
        let debug = format!(
            "{:?} {:?}",
            cookies(),
            Keyring::new(&SecretKey::new([9; 32]), &[])
        );
        assert!(
            debug.contains("sid") && !debug.contains("s3cr3t"),
            "{debug}"
        );
    }
}

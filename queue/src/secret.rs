//! The `secrets` key (SPEC §7.1): 32 bytes, given base64-encoded, that unsubscribe tokens
//! are made under (and, later, stored session cookies encrypted with). It never shows in
//! `Debug` output, logs or errors.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine as _};

/// The key's length in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte secret key. `Debug` prints `SecretKey(<redacted>)`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// Decodes a key written as base64 (standard or URL-safe alphabet, padded or not,
    /// surrounding whitespace ignored, as `openssl rand -base64 32` writes it). The error
    /// says what is wrong without repeating the text.
    pub fn from_base64(text: &str) -> Result<SecretKey, String> {
        let text = text.trim();
        let lenient =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let bytes = GeneralPurpose::new(&alphabet::STANDARD, lenient)
            .decode(text)
            .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, lenient).decode(text))
            .map_err(|_| "not valid base64".to_string())?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "must be {KEY_LEN} bytes, base64-encoded (`openssl rand -base64 32`); this is {} bytes",
                bytes.len()
            )
        })?;
        Ok(SecretKey(bytes))
    }

    /// The key's bytes, for the MAC or cipher that uses it.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    use super::*;

    #[test]
    fn keys_decode_from_base64_of_32_bytes_only() {
        let key = [0xabu8; KEY_LEN];
        for text in [
            STANDARD.encode(key),
            format!("  {}\n", STANDARD.encode(key)),
            STANDARD.encode(key).trim_end_matches('=').to_string(),
            URL_SAFE.encode(key),
        ] {
            assert_eq!(
                SecretKey::from_base64(&text).map(|k| *k.bytes()),
                Ok(key),
                "{text}"
            );
        }
        let short = SecretKey::from_base64(&STANDARD.encode([1u8; 16])).expect_err("short");
        assert!(
            short.contains("32 bytes") && short.contains("16 bytes"),
            "{short}"
        );
        assert_eq!(
            SecretKey::from_base64("not base64!").expect_err("garbage"),
            "not valid base64"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SecretKey::new([0x41; KEY_LEN]);
        let text = format!("{key:?} {:?}", Some(&key));
        assert!(
            !text.contains("65") && !text.contains("41") && !text.contains("QUFB"),
            "{text}"
        );
        assert!(text.contains("<redacted>"));
    }
}

//! TSIG keys (RFC 8945) as configured: a name, an algorithm and a base64 secret.
//!
//! Signing and verification are domain's (`domain::tsig`); this module turns configuration into
//! its keys, keeps the set of keys a server accepts, and names the key in every error.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyns_wire::Name;
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, Key, KeyName, KeyStore};

/// A TSIG problem, always naming the key involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigError {
    #[error("TSIG key {key}: unknown algorithm {algorithm:?} (use hmac-sha256 or hmac-sha512)")]
    Algorithm { key: String, algorithm: String },
    #[error("TSIG key {key}: the secret is not valid base64")]
    Secret { key: String },
    #[error("TSIG key {key}: bad key name")]
    KeyName { key: String },
    #[error("TSIG key {key}: {reason}")]
    Rejected { key: String, reason: String },
    #[error("message is not signed with TSIG key {key}")]
    Unsigned { key: String },
    #[error("message does not fit the TSIG record")]
    NoSpace,
}

/// A TSIG key ready for signing and verifying. Cheap to clone.
#[derive(Clone)]
pub struct TsigKey {
    key: Arc<Key>,
    name: Name,
}

impl TsigKey {
    /// A key from configuration: `name` (a domain name such as `xfr.example.`), `algorithm`
    /// (`hmac-sha256`, `hmac-sha512`, also `hmac-sha1`, `hmac-sha384`), `secret` in base64 as
    /// tools like `tsig-keygen` and `keymgr` print it.
    pub fn new(name: &str, algorithm: &str, secret: &str) -> Result<Self, TsigError> {
        let key_err = || TsigError::KeyName {
            key: name.to_string(),
        };
        let our_name = Name::from_text(name).map_err(|_| key_err())?;
        let key_name = KeyName::from_octets(
            domain::dep::octseq::array::Array::try_from(our_name.as_wire())
                .map_err(|_| key_err())?,
        )
        .map_err(|_| key_err())?;
        let algorithm_parsed: Algorithm = algorithm
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| TsigError::Algorithm {
                key: name.to_string(),
                algorithm: algorithm.to_string(),
            })?;
        let secret: Vec<u8> =
            domain::utils::base64::decode(secret.trim()).map_err(|_| TsigError::Secret {
                key: name.to_string(),
            })?;
        let key = Key::new(algorithm_parsed, &secret, key_name, None, None).map_err(|e| {
            TsigError::Rejected {
                key: name.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(TsigKey {
            key: Arc::new(key),
            name: our_name,
        })
    }

    /// The key's name, lowercase.
    pub fn name(&self) -> &Name {
        &self.name
    }

    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    pub(crate) fn key(&self) -> Arc<Key> {
        self.key.clone()
    }

    /// The error for a failed verification with this key.
    pub(crate) fn rejected(&self, reason: impl fmt::Display) -> TsigError {
        TsigError::Rejected {
            key: self.name.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "TsigKey({} {})", self.name, self.key.algorithm())
    }
}

impl PartialEq for TsigKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.algorithm() == other.algorithm()
    }
}

/// The keys a server accepts, looked up by name and algorithm (RFC 8945 section 5.2.2).
#[derive(Clone, Default, Debug)]
pub struct KeyRing {
    keys: HashMap<Name, TsigKey>,
}

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = TsigKey>) -> Self {
        KeyRing {
            keys: keys.into_iter().map(|k| (k.name.clone(), k)).collect(),
        }
    }

    pub fn insert(&mut self, key: TsigKey) {
        self.keys.insert(key.name.clone(), key);
    }

    pub fn get(&self, name: &Name) -> Option<&TsigKey> {
        self.keys.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyStore for KeyRing {
    type Key = Arc<Key>;

    fn get_key<N: domain::base::ToName>(&self, name: &N, algorithm: Algorithm) -> Option<Arc<Key>> {
        let wire = name.to_vec();
        let name = Name::from_wire(wire.as_slice()).ok()?;
        self.keys
            .get(&name)
            .filter(|k| k.algorithm() == algorithm)
            .map(TsigKey::key)
    }
}

/// The error response to a request whose TSIG failed (RFC 8945 section 5.2).
///
/// domain 0.12 reports a MAC mismatch as TSIG error FORMERR inside a NOTAUTH answer; RFC 8945
/// section 5.2.3 says BADSIG, which is what peers log and act on, so the error field (the
/// four octets before the empty "other data" at the very end) is corrected here.
pub(crate) fn tsig_error_response(
    error: domain::tsig::ServerError<Arc<Key>>,
    request: &domain::base::Message<Vec<u8>>,
) -> Option<Vec<u8>> {
    use domain::base::iana::TsigRcode;
    let bad_mac = error.error() == TsigRcode::FORMERR;
    let mut msg = error
        .build_message(request, domain::base::MessageBuilder::new_vec())
        .ok()?
        .finish();
    let notauth = msg.get(3).is_some_and(|b| b & 0x0f == 9);
    let len = msg.len();
    if bad_mac && notauth && len > 16 && msg[len - 4..] == [0, 1, 0, 0] {
        msg[len - 3] = 16;
    }
    Some(msg)
}

/// TSIG time from a wall-clock time (RFC 8945 section 4.3: seconds since the epoch, 48 bits).
pub(crate) fn time48(now: SystemTime) -> Time48 {
    Time48::from_u64(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_config() {
        let k = TsigKey::new("XFR.Example.", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
        assert_eq!(k.name().to_string(), "xfr.example.");
        assert_eq!(k.algorithm(), Algorithm::Sha256);
        let k = TsigKey::new("k", "HMAC-SHA512.", "c2VjcmV0").unwrap();
        assert_eq!(k.algorithm(), Algorithm::Sha512);
        let e = TsigKey::new("k1", "hmac-md5", "c2VjcmV0").unwrap_err();
        assert!(e.to_string().contains("k1"), "{e}");
        let e = TsigKey::new("k2", "hmac-sha256", "not base64!").unwrap_err();
        assert_eq!(e, TsigError::Secret { key: "k2".into() });
        assert!(format!("{k:?}").starts_with("TsigKey(k."));
    }
}

//! The keys tokens are verified with: an HS256 shared secret, and a file of
//! PEM public keys or a JWKS document (RS256, ES256, EdDSA), re-read when its
//! content changes so keys rotate without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The algorithms a key file may hold keys for.
pub const PUBLIC_KEY_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// How often a key file is read again to see whether it changed.
pub const KEY_FILE_CHECK_INTERVAL_MS: u64 = 1_000;
/// Largest key file read; a larger one is refused.
pub const KEY_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash's 256 bits).
pub const SECRET_BYTES_MIN: usize = 32;

/// One key and the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The JWK's `kid`, matched against a token header's `kid`.
    pub key_id: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// A key file or a secret that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("AUTH_JWT_SECRET must be at least {SECRET_BYTES_MIN} bytes")]
    SecretTooShort,
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} is larger than {KEY_FILE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("the key file is not a JWKS document: {0}")]
    Jwks(#[source] serde_json::Error),
    #[error("key {index} of the key file: {reason}")]
    Unsupported { index: usize, reason: String },
    #[error("key {index} of the key file cannot be used: {source}")]
    Invalid {
        index: usize,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error(
        "the key file holds no public key (PEM `BEGIN PUBLIC KEY` blocks or a JWKS `keys` array)"
    )]
    Empty,
}

/// Keys to try on a token, each for one algorithm.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// The HS256 key of a shared secret.
    pub fn secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(KeyError::SecretTooShort);
        }
        Ok(Self {
            keys: vec![VerifyingKey {
                key_id: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            }],
        })
    }

    /// The keys of a key file's text: a JWKS document (`{"keys": [...]}`) or
    /// PEM public keys (SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----`).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let keys = if text.trim_start().starts_with('{') {
            let set: JwkSet = serde_json::from_str(text).map_err(KeyError::Jwks)?;
            set.keys
                .iter()
                .enumerate()
                .map(|(index, jwk)| jwk_key(index, jwk))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            pem_blocks(text)
                .enumerate()
                .map(|(index, block)| pem_key(index, block))
                .collect::<Result<Vec<_>, _>>()?
        };
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// Every key, in file order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// This set followed by `other`.
    pub fn chain(&self, other: &KeySet) -> KeySet {
        KeySet {
            keys: self.keys.iter().chain(&other.keys).cloned().collect(),
        }
    }
}

/// Each `-----BEGIN …-----` to `-----END …-----` block of a PEM text.
fn pem_blocks(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("-----BEGIN ")
        .filter_map(move |(start, _)| {
            let rest = &text[start..];
            let end_marker = rest.find("-----END ")?;
            let line_end = rest[end_marker..]
                .find('\n')
                .map_or(rest.len(), |offset| end_marker + offset);
            Some(&rest[..line_end])
        })
}

fn pem_key(index: usize, block: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = block.as_bytes();
    let parsed = DecodingKey::from_rsa_pem(bytes)
        .map(|key| (Algorithm::RS256, key))
        .or_else(|_| DecodingKey::from_ec_pem(bytes).map(|key| (Algorithm::ES256, key)))
        .or_else(|_| DecodingKey::from_ed_pem(bytes).map(|key| (Algorithm::EdDSA, key)));
    match parsed {
        Ok((algorithm, key)) => Ok(VerifyingKey {
            key_id: None,
            algorithm,
            key,
        }),
        Err(_) => Err(KeyError::Unsupported {
            index,
            reason: "not an RSA, EC P-256 or Ed25519 public key in PEM".into(),
        }),
    }
}

fn jwk_key(index: usize, jwk: &Jwk) -> Result<VerifyingKey, KeyError> {
    let unsupported = |reason: &str| KeyError::Unsupported {
        index,
        reason: reason.to_owned(),
    };
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => return Err(unsupported(
            "a shared secret (kty oct) does not belong in a public key file; use AUTH_JWT_SECRET",
        )),
        _ => {
            return Err(unsupported(
                "only RSA, EC P-256 and Ed25519 keys are accepted",
            ))
        }
    };
    let declared = match &jwk.common.key_algorithm {
        None => inferred,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(other) => {
            return Err(unsupported(&format!(
                "alg {other:?} is not accepted (RS256, ES256 or EdDSA)"
            )))
        }
    };
    if declared != inferred {
        return Err(unsupported("its alg does not fit its key type"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|source| KeyError::Invalid { index, source })?;
    Ok(VerifyingKey {
        key_id: jwk.common.key_id.clone(),
        algorithm: declared,
        key,
    })
}

struct Loaded {
    text: String,
    keys: Arc<KeySet>,
    checked_at: Instant,
}

/// A key file, read again at most every `check_interval` and parsed again
/// when its text changed. A change that cannot be parsed (a file being
/// written, a bad key) keeps the keys in use and is logged.
pub struct KeyFile {
    path: PathBuf,
    check_interval: Duration,
    loaded: RwLock<Loaded>,
}

fn read_bounded(path: &Path) -> Result<String, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let length = std::fs::metadata(path).map_err(read_error)?.len();
    if length > KEY_FILE_BYTES_MAX {
        return Err(KeyError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    std::fs::read_to_string(path).map_err(read_error)
}

impl KeyFile {
    /// Reads and parses the file now: a file that cannot be used stops the start.
    pub fn open(path: PathBuf, check_interval: Duration) -> Result<Self, KeyError> {
        let text = read_bounded(&path)?;
        let keys = Arc::new(KeySet::parse(&text)?);
        Ok(Self {
            path,
            check_interval,
            loaded: RwLock::new(Loaded {
                text,
                keys,
                checked_at: Instant::now(),
            }),
        })
    }

    /// The keys of the file as it is now (as of at most `check_interval` ago).
    pub fn current(&self) -> Arc<KeySet> {
        {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            if loaded.checked_at.elapsed() < self.check_interval {
                return Arc::clone(&loaded.keys);
            }
        }
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if loaded.checked_at.elapsed() >= self.check_interval {
            loaded.checked_at = Instant::now();
            match read_bounded(&self.path) {
                Ok(text) if text != loaded.text => match KeySet::parse(&text) {
                    Ok(keys) => {
                        tracing::info!(path = %self.path.display(), keys = keys.keys().len(), "key file re-read");
                        loaded.keys = Arc::new(keys);
                        loaded.text = text;
                    }
                    Err(error) => {
                        tracing::error!(path = %self.path.display(), %error, "changed key file cannot be used; keeping the keys in use");
                    }
                },
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "key file cannot be read; keeping the keys in use");
                }
            }
        }
        Arc::clone(&loaded.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEMS: [(&str, Algorithm); 3] = [
        (include_str!("../testdata/rsa_public.pem"), Algorithm::RS256),
        (include_str!("../testdata/ec_public.pem"), Algorithm::ES256),
        (include_str!("../testdata/ed_public.pem"), Algorithm::EdDSA),
    ];

    fn algorithms(set: &KeySet) -> Vec<Algorithm> {
        set.keys().iter().map(|key| key.algorithm).collect()
    }

    #[test]
    fn a_pem_file_holds_keys_of_each_kind() {
        let text: String = PEMS.iter().map(|(pem, _)| *pem).collect();
        let set = KeySet::parse(&text).expect("three keys");
        assert_eq!(
            algorithms(&set),
            PEMS.iter().map(|(_, alg)| *alg).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_jwks_gives_each_key_its_id_and_algorithm() {
        let set = KeySet::parse(include_str!("../testdata/jwks.json")).expect("jwks");
        assert_eq!(algorithms(&set), PUBLIC_KEY_ALGORITHMS);
        let ids: Vec<_> = set.keys().iter().map(|key| key.key_id.as_deref()).collect();
        assert_eq!(ids, [Some("rsa-1"), Some("ec-1"), Some("ed-1")]);
    }

    #[test]
    fn unusable_files_are_refused_with_a_reason() {
        assert!(matches!(KeySet::parse(""), Err(KeyError::Empty)));
        assert!(matches!(
            KeySet::parse(r#"{"keys": []}"#),
            Err(KeyError::Empty)
        ));
        assert!(matches!(KeySet::parse("{oops"), Err(KeyError::Jwks(_))));
        let secret = r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#;
        assert!(matches!(
            KeySet::parse(secret),
            Err(KeyError::Unsupported { index: 0, .. })
        ));
        let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            KeySet::parse(garbage),
            Err(KeyError::Unsupported { index: 0, .. })
        ));
        assert!(matches!(
            KeySet::secret(b"short"),
            Err(KeyError::SecretTooShort)
        ));
    }

    #[test]
    fn a_key_file_is_read_again_when_it_changes_and_kept_when_broken() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("keys.pem");
        std::fs::write(&path, PEMS[0].0).expect("write");
        let file = KeyFile::open(path.clone(), Duration::ZERO).expect("opens");
        assert_eq!(algorithms(&file.current()), [Algorithm::RS256]);

        std::fs::write(&path, format!("{}{}", PEMS[0].0, PEMS[2].0)).expect("rotate");
        assert_eq!(
            algorithms(&file.current()),
            [Algorithm::RS256, Algorithm::EdDSA]
        );

        std::fs::write(&path, "half written").expect("break");
        assert_eq!(
            algorithms(&file.current()),
            [Algorithm::RS256, Algorithm::EdDSA]
        );
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(file.current().keys().len(), 2);
    }

    #[test]
    fn a_key_file_is_not_read_again_within_its_interval() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("keys.pem");
        std::fs::write(&path, PEMS[1].0).expect("write");
        let file = KeyFile::open(path.clone(), Duration::from_secs(3600)).expect("opens");
        std::fs::write(&path, PEMS[2].0).expect("rotate");
        assert_eq!(algorithms(&file.current()), [Algorithm::ES256]);
    }
}

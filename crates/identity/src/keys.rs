//! The keys tokens are verified with: an HS256 shared secret, and a file of
//! PEM public keys or a JWKS document (RS256, ES256, EdDSA), re-read when its
//! content changes so keys rotate without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::key_fitness;

/// The algorithms a key file may hold keys for.
pub const PUBLIC_KEY_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// How often a key file is read again to see whether it changed.
pub const KEY_FILE_CHECK_INTERVAL_MS: u64 = 1_000;
/// Largest key file read; a larger one is refused.
pub const KEY_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Most keys a key file may hold that this server verifies with; a file with
/// more is refused. A token without `kid` is tried against every key of its
/// algorithm, so a refused one costs a signature check per key: 0.37 s of CPU
/// against 10,001 Ed25519 keys (tester h121), about 1 ms against this many.
/// Identity providers publish a few (a signing key and the next one).
pub const KEYS_PER_FILE_MAX: usize = 32;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash's 256 bits).
pub const SECRET_BYTES_MIN: usize = 32;
/// Fewest different bytes an HS256 secret must hold: 32 spaces or a word
/// repeated are long enough but guessable, while a random secret (even one
/// spelled in hex, 16 symbols) holds far more.
pub const SECRET_DISTINCT_BYTES_MIN: usize = 8;

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
    #[error("AUTH_JWT_SECRET holds only {distinct} different bytes (at least {SECRET_DISTINCT_BYTES_MIN}): use a random secret, such as `openssl rand -hex 32` prints")]
    SecretTooPlain { distinct: usize },
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} is larger than {KEY_FILE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("the key file {path} is not a regular file (a device, a pipe or a folder): name a file of PEM keys or a JWKS document")]
    NotAFile { path: PathBuf },
    #[error("AUTH_JWT_SECRET begins or ends with white space or an invisible character (a newline kept from a file?): every byte of it signs, so remove it, here and where tokens are signed")]
    SecretPadded,
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
    #[error("key {index} of the key file is not a valid JWK: {source}")]
    BadJwk {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("key {index} of the key file has a BEGIN line without its END line (a file still being written?)")]
    Truncated { index: usize },
    #[error(
        "the key file holds no public key (PEM `BEGIN PUBLIC KEY` blocks or a JWKS `keys` array)"
    )]
    Empty,
    #[error("the key file holds no key this server verifies with: {skipped}")]
    NoneUsable { skipped: String },
    #[error("the key file holds {count} keys this server verifies with, more than {KEYS_PER_FILE_MAX}: each token without `kid` would be checked against every one")]
    TooMany { count: usize },
}

/// Keys to try on a token, each for one algorithm.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    skipped: Vec<SkippedKey>,
}

/// A JWKS entry passed over because it is not a signature key this server
/// verifies with (RFC 7517 §5: a reader SHOULD ignore keys whose type or
/// values it does not support), such as an encryption key (`use: enc`) or a
/// PS256 key published beside the signing keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its place in the file's `keys` array, from 0.
    pub index: usize,
    pub key_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {}", self.index)?;
        if let Some(key_id) = &self.key_id {
            write!(f, " (kid {key_id:?})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Whether `secret` begins or ends with a character no one means to sign
/// with: white space (ASCII's, `\v` included, and Unicode's: U+00A0, U+3000, …),
/// a control character, or one that shows nothing (a zero-width space or
/// joiner, a word joiner, a byte-order mark, U+180E), which a copy from a file, a terminal or a web page
/// brings along (tester h161 N4). A secret that is not UTF-8 is checked by
/// its bytes' ASCII white space.
fn is_padded(secret: &[u8]) -> bool {
    let unseen = |character: char| {
        character.is_whitespace()
            || character.is_control()
            || matches!(
                character,
                '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
            )
    };
    match std::str::from_utf8(secret) {
        Ok(text) => {
            text.chars().next().is_some_and(unseen) || text.chars().next_back().is_some_and(unseen)
        }
        Err(_) => {
            let ascii_space = |byte: &u8| byte.is_ascii_whitespace() || byte.is_ascii_control();
            secret.first().is_some_and(ascii_space) || secret.last().is_some_and(ascii_space)
        }
    }
}

impl KeySet {
    /// The HS256 key of a shared secret.
    pub fn secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(KeyError::SecretTooShort);
        }
        let distinct = secret
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct < SECRET_DISTINCT_BYTES_MIN {
            return Err(KeyError::SecretTooPlain { distinct });
        }
        if is_padded(secret) {
            return Err(KeyError::SecretPadded);
        }
        Ok(Self {
            keys: vec![VerifyingKey {
                key_id: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            }],
            skipped: Vec::new(),
        })
    }

    /// The keys of a key file's text: a JWKS document (`{"keys": [...]}`) or
    /// PEM public keys (SubjectPublicKeyInfo `-----BEGIN PUBLIC KEY-----`, or
    /// PKCS #1 `-----BEGIN RSA PUBLIC KEY-----`).
    ///
    /// A JWKS entry that is not a signature key of RS256, ES256 or EdDSA is
    /// skipped ([`KeySet::skipped`]); a malformed entry, a shared secret, a
    /// PEM block that is not a public key (a private key, a certificate) or
    /// is cut short (a file caught while being written) refuses the whole
    /// text, as does a text with no usable key or with more than
    /// [`KEYS_PER_FILE_MAX`].
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (keys, skipped) = if text.trim_start().starts_with('{') {
            let set: RawJwkSet = serde_json::from_str(text).map_err(KeyError::Jwks)?;
            let mut keys = Vec::new();
            let mut skipped = Vec::new();
            for (index, entry) in set.keys.into_iter().enumerate() {
                match jwk_key(index, entry)? {
                    JwkEntry::Key(key) => keys.push(key),
                    JwkEntry::Skipped(key) => skipped.push(key),
                }
            }
            (keys, skipped)
        } else {
            let keys = pem_blocks(text)?
                .into_iter()
                .enumerate()
                .map(|(index, block)| pem_key(index, block))
                .collect::<Result<Vec<_>, _>>()?;
            (keys, Vec::new())
        };
        if keys.is_empty() {
            return Err(if skipped.is_empty() {
                KeyError::Empty
            } else {
                KeyError::NoneUsable {
                    skipped: skipped
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            });
        }
        if keys.len() > KEYS_PER_FILE_MAX {
            return Err(KeyError::TooMany { count: keys.len() });
        }
        Ok(Self { keys, skipped })
    }

    /// Every key, in file order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The JWKS entries passed over, in file order.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// This set followed by `other`.
    pub fn chain(&self, other: &KeySet) -> KeySet {
        KeySet {
            keys: self.keys.iter().chain(&other.keys).cloned().collect(),
            skipped: self.skipped.iter().chain(&other.skipped).cloned().collect(),
        }
    }
}

/// One PEM block: its label (`PUBLIC KEY`) and its text from `-----BEGIN`
/// to the end of its `-----END` line.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a str,
}

/// The `-----BEGIN <label>-----` … `-----END <label>-----` blocks of a PEM
/// text, in order; text between blocks is ignored (RFC 7468 §2). A block
/// without its end line (or with another block's start before it) is
/// [`KeyError::Truncated`].
fn pem_blocks(text: &str) -> Result<Vec<PemBlock<'_>>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let index = blocks.len();
        let block = &rest[start..];
        let truncated = || KeyError::Truncated { index };
        let label_end = block[BEGIN.len()..].find(DASHES).ok_or_else(truncated)?;
        let label = &block[BEGIN.len()..BEGIN.len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block.find(&end_marker).ok_or_else(truncated)?;
        if block[BEGIN.len()..end].contains(BEGIN) {
            return Err(truncated());
        }
        let block_end = end + end_marker.len();
        blocks.push(PemBlock {
            label,
            text: &block[..block_end],
        });
        rest = &block[block_end..];
    }
    Ok(blocks)
}

fn pem_key(index: usize, block: PemBlock<'_>) -> Result<VerifyingKey, KeyError> {
    let unsupported = |reason: String| KeyError::Unsupported { index, reason };
    match block.label {
        "PUBLIC KEY" => {}
        "RSA PUBLIC KEY" if !holds_pkcs1(block.text) => {
            return Err(unsupported(
                "a BEGIN RSA PUBLIC KEY block must hold a PKCS #1 key, and this one holds a \
                 SubjectPublicKeyInfo: label it BEGIN PUBLIC KEY"
                    .into(),
            ))
        }
        "RSA PUBLIC KEY" => {}
        label if label.contains("PRIVATE KEY") => {
            return Err(unsupported(format!(
                "a private key (BEGIN {label}): the key file takes public keys only \
                 (`openssl pkey -pubout` writes one), and a private key does not belong in it"
            )))
        }
        label => {
            return Err(unsupported(format!(
                "a BEGIN {label} block: the key file takes public keys (BEGIN PUBLIC KEY)"
            )))
        }
    }
    let bytes = block.text.as_bytes();
    let parsed = DecodingKey::from_rsa_pem(bytes)
        .map(|key| (Algorithm::RS256, key))
        .or_else(|_| DecodingKey::from_ec_pem(bytes).map(|key| (Algorithm::ES256, key)))
        .or_else(|_| DecodingKey::from_ed_pem(bytes).map(|key| (Algorithm::EdDSA, key)));
    match parsed {
        Ok((algorithm, key)) => {
            match pem_der(block.text).and_then(|der| key_fitness::pem_key_unfit(&der, algorithm)) {
                Some(reason) => Err(unsupported(reason)),
                None => Ok(VerifyingKey {
                    key_id: None,
                    algorithm,
                    key,
                }),
            }
        }
        Err(_) => Err(unsupported(
            "not an RSA, EC P-256 or Ed25519 public key in PEM".into(),
        )),
    }
}

/// Whether a PEM block's DER is a PKCS #1 `RSAPublicKey` (RFC 8017 A.1.1:
/// a SEQUENCE whose first element is the modulus, an INTEGER) rather than a
/// SubjectPublicKeyInfo (RFC 5280 4.1: a SEQUENCE whose first element is
/// the algorithm, a SEQUENCE), which `jsonwebtoken` would read as PKCS #1
/// under that label, making a key that verifies nothing.
fn holds_pkcs1(block: &str) -> bool {
    let Some(der) = pem_der(block) else {
        return false;
    };
    // The outer SEQUENCE's length: one byte, or 0x80 + the count of bytes after.
    let header = match der.get(1) {
        Some(length) if *length < 0x80 => 2,
        Some(length) => 2 + usize::from(length & 0x7f),
        None => return false,
    };
    der.first() == Some(&0x30) && der.get(header) == Some(&0x02)
}

/// The DER a PEM block's base64 lines spell, or `None` when they are not
/// base64 (RFC 7468 §2).
fn pem_der(block: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = block
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A JWKS document with its entries unread, so that each is judged alone.
#[derive(serde::Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

enum JwkEntry {
    Key(VerifyingKey),
    Skipped(SkippedKey),
}

/// Why a JWKS entry is not a signature key of an accepted kind, or `None`.
fn skip_reason(entry: &serde_json::Value) -> Option<String> {
    let text = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
    if text("use").is_some_and(|usage| usage != "sig") {
        return Some("not a signature key (use is not sig)".into());
    }
    if let Some(operations) = entry.get("key_ops").and_then(serde_json::Value::as_array) {
        if !operations.iter().any(|operation| operation == "verify") {
            return Some("its key_ops do not include verify".into());
        }
    }
    let accepted_curve = match text("kty") {
        Some("RSA") => None,
        Some("EC") => Some("P-256"),
        Some("OKP") => Some("Ed25519"),
        other => return Some(format!("kty {other:?} is not RSA, EC or OKP")),
    };
    if let Some(curve) = accepted_curve {
        if text("crv") != Some(curve) {
            return Some(format!("curve {:?} is not {curve}", text("crv")));
        }
    }
    if let Some(reason) = text("n")
        .filter(|_| text("kty") == Some("RSA"))
        .and_then(key_fitness::jwk_modulus_unfit)
    {
        return Some(reason);
    }
    match text("alg") {
        None | Some("RS256" | "ES256" | "EdDSA") => None,
        Some(other) => Some(format!("alg {other} is not RS256, ES256 or EdDSA")),
    }
}

fn jwk_key(index: usize, entry: serde_json::Value) -> Result<JwkEntry, KeyError> {
    let secret = entry.get("kty").and_then(serde_json::Value::as_str) == Some("oct");
    if let Some(reason) = skip_reason(&entry).filter(|_| !secret) {
        let key_id = entry
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        return Ok(JwkEntry::Skipped(SkippedKey {
            index,
            key_id,
            reason,
        }));
    }
    let jwk: Jwk =
        serde_json::from_value(entry).map_err(|source| KeyError::BadJwk { index, source })?;
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
    let key = DecodingKey::from_jwk(&jwk).map_err(|source| KeyError::Invalid { index, source })?;
    Ok(JwkEntry::Key(VerifyingKey {
        key_id: jwk.common.key_id.clone(),
        algorithm: declared,
        key,
    }))
}

struct Loaded {
    text: String,
    keys: Arc<KeySet>,
    checked_at: Instant,
    /// The file's text (or read error) last refused, and why, so that a file
    /// left broken is logged once, not at every check, and can be shown.
    refused: Option<(String, String)>,
}

/// A key file, read again at most every `check_interval` and parsed again
/// when its text changed. A change that cannot be parsed (a file being
/// written, a bad key) keeps the keys in use and is logged once.
pub struct KeyFile {
    path: PathBuf,
    check_interval: Duration,
    loaded: RwLock<Loaded>,
}

/// The key file's text: a regular file (a link to one followed) of at most
/// [`KEY_FILE_BYTES_MAX`] bytes. A device, a named pipe or a directory is
/// refused before it is opened, as `/dev/zero` would be read without end
/// and a pipe would hold the start until a writer came (tester h157 F1);
/// the read stops one byte past the bound, for a file growing meanwhile.
fn read_bounded(path: &Path) -> Result<String, KeyError> {
    use std::io::Read as _;

    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let too_large = || KeyError::TooLarge {
        path: path.to_path_buf(),
    };
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(too_large());
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(KEY_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > KEY_FILE_BYTES_MAX {
        return Err(too_large());
    }
    Ok(text)
}

fn log_skipped(path: &Path, keys: &KeySet) {
    for skipped in keys.skipped() {
        tracing::warn!(path = %path.display(), %skipped, "key file entry skipped: not a signature key this server verifies with");
    }
}

impl KeyFile {
    /// Reads and parses the file now: a file that cannot be used stops the start.
    pub fn open(path: PathBuf, check_interval: Duration) -> Result<Self, KeyError> {
        let text = read_bounded(&path)?;
        let keys = Arc::new(KeySet::parse(&text)?);
        log_skipped(&path, &keys);
        Ok(Self {
            path,
            check_interval,
            loaded: RwLock::new(Loaded {
                text,
                keys,
                checked_at: Instant::now(),
                refused: None,
            }),
        })
    }

    /// Why the file as it is now is not the one in use (a change that cannot
    /// be used, or a file that cannot be read); `None` when the keys in use
    /// are the file's. Checks the file first when `check_interval` has
    /// passed, as a token's verification does, so that a server no token
    /// reaches still reports the file as it is (tester h122).
    pub fn refused_change(&self) -> Option<String> {
        drop(self.current());
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        loaded.refused.as_ref().map(|(_, error)| error.clone())
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
            let refusal = match read_bounded(&self.path) {
                Ok(text) if text == loaded.text => None,
                Ok(text) => match KeySet::parse(&text) {
                    Ok(keys) => {
                        tracing::info!(path = %self.path.display(), keys = keys.keys().len(), skipped = keys.skipped().len(), "key file re-read");
                        log_skipped(&self.path, &keys);
                        loaded.keys = Arc::new(keys);
                        loaded.text = text;
                        None
                    }
                    Err(error) => Some((text, error)),
                },
                Err(error) => Some((error.to_string(), error)),
            };
            match refusal {
                Some((refused, error))
                    if loaded.refused.as_ref().map(|(text, _)| text) != Some(&refused) =>
                {
                    tracing::error!(path = %self.path.display(), %error, "changed key file cannot be used; keeping the keys in use (logged once for this content)");
                    loaded.refused = Some((refused, error.to_string()));
                }
                Some(_) => {}
                None => loaded.refused = None,
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
    fn a_file_with_more_keys_than_the_bound_is_refused() {
        let ed_pem = PEMS[2].0;
        let at_bound = ed_pem.repeat(KEYS_PER_FILE_MAX);
        assert_eq!(
            KeySet::parse(&at_bound).expect("at the bound").keys().len(),
            KEYS_PER_FILE_MAX
        );
        let over = ed_pem.repeat(KEYS_PER_FILE_MAX + 1);
        let refused = KeySet::parse(&over).err().expect("over the bound");
        assert!(matches!(refused, KeyError::TooMany { count } if count == KEYS_PER_FILE_MAX + 1));
        assert!(refused.to_string().contains(&KEYS_PER_FILE_MAX.to_string()));
        let jwks: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/jwks.json")).expect("json");
        let ed_jwk = jwks["keys"][2].clone();
        let many = serde_json::json!({ "keys": vec![ed_jwk; KEYS_PER_FILE_MAX + 1] });
        assert!(matches!(
            KeySet::parse(&many.to_string()),
            Err(KeyError::TooMany { .. })
        ));
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
        assert!(matches!(
            KeySet::secret(&[b' '; 32]),
            Err(KeyError::SecretTooPlain { distinct: 1 })
        ));
        assert!(matches!(
            KeySet::secret(b"abcdefgabcdefgabcdefgabcdefgabcdefg"),
            Err(KeyError::SecretTooPlain { distinct: 7 })
        ));
        assert!(KeySet::secret(b"abcdefghabcdefghabcdefghabcdefgh").is_ok());
        for padded in [
            &b"abcdefghabcdefghabcdefghabcdefgh\n"[..],
            b"abcdefghabcdefghabcdefghabcdefgh ",
            b"\tabcdefghabcdefghabcdefghabcdefgh",
            b"abcdefghabcdefghabcdefghabcdefgh\r\n",
            b"abcdefghabcdefghabcdefghabcdefgh\x0b",
            "abcdefghabcdefghabcdefghabcdefgh\u{a0}".as_bytes(),
            "abcdefghabcdefghabcdefghabcdefgh\u{3000}".as_bytes(),
            "\u{200b}abcdefghabcdefghabcdefghabcdefgh".as_bytes(),
            "\u{feff}abcdefghabcdefghabcdefghabcdefgh".as_bytes(),
            "\u{180e}abcdefghabcdefghabcdefghabcdefgh".as_bytes(),
            b"abcdefghabcdefghabcdefghabcdefgh\x01",
            b"\xffabcdefghabcdefghabcdefghabcdefgh\x0b",
        ] {
            assert!(
                matches!(KeySet::secret(padded), Err(KeyError::SecretPadded)),
                "{padded:?}"
            );
        }
        assert!(KeySet::secret(b"abcdefgh abcdefghabcdefghabcdefgh").is_ok());
    }

    #[test]
    fn pem_keys_the_verifier_cannot_use_are_refused_naming_their_size_or_curve() {
        for (pem, named) in [
            (include_str!("../testdata/rsa1024_public.pem"), "1024 bits"),
            (
                include_str!("../testdata/rsa1024_public_pkcs1.pem"),
                "1024 bits",
            ),
            (
                include_str!("../testdata/ec_p384_public.pem"),
                "curve P-384",
            ),
            (
                include_str!("../testdata/ec_secp256k1_public.pem"),
                "curve secp256k1",
            ),
        ] {
            match KeySet::parse(pem) {
                Err(KeyError::Unsupported { index: 0, reason }) => {
                    assert!(reason.contains(named), "{named}: {reason}")
                }
                Err(other) => panic!("{named}: refused for another reason: {other}"),
                Ok(_) => panic!("{named}: accepted"),
            }
        }
        let pkcs1 = include_str!("../testdata/rsa_public_pkcs1.pem");
        assert_eq!(
            algorithms(&KeySet::parse(pkcs1).expect("a 2048-bit PKCS #1 key")),
            [Algorithm::RS256]
        );
    }

    #[test]
    fn a_jwks_rsa_key_outside_the_verifiers_sizes_is_skipped_naming_its_size() {
        use base64::Engine;
        let modulus =
            |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let rsa = |kid: &str, n: String| serde_json::json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"});
        // 2,047 bits: the top byte 0x7f after a leading zero byte; 2,048: 0x80.
        let short: Vec<u8> = [0, 0x7f].into_iter().chain([0xa5; 255]).collect();
        let enough: Vec<u8> = [0x80].into_iter().chain([0xa5; 255]).collect();
        let set = KeySet::parse(&jwks_with(&[
            rsa("short", modulus(short)),
            rsa("enough", modulus(enough)),
        ]))
        .expect("the usable keys");
        let ids: Vec<_> = set.keys().iter().map(|key| key.key_id.as_deref()).collect();
        assert_eq!(
            ids,
            [Some("rsa-1"), Some("ec-1"), Some("ed-1"), Some("enough")]
        );
        assert_eq!(set.skipped().len(), 1);
        assert_eq!(set.skipped()[0].key_id.as_deref(), Some("short"));
        assert!(
            set.skipped()[0].reason.contains("2047 bits"),
            "{}",
            set.skipped()[0].reason
        );
    }

    /// The test JWKS with `extra` entries appended.
    fn jwks_with(extra: &[serde_json::Value]) -> String {
        let mut set: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/jwks.json")).expect("json");
        let keys = set["keys"].as_array_mut().expect("keys");
        keys.extend(extra.iter().cloned());
        set.to_string()
    }

    #[test]
    fn jwks_entries_that_are_not_signature_keys_it_verifies_with_are_skipped() {
        let set: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/jwks.json")).expect("json");
        let rsa = set["keys"][0].clone();
        let with = |changes: serde_json::Value| {
            let mut entry = rsa.clone();
            for (name, value) in changes.as_object().expect("object") {
                entry[name] = value.clone();
            }
            entry
        };
        let extra = [
            with(serde_json::json!({"kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"})),
            with(serde_json::json!({"kid": "ps-1", "alg": "PS256"})),
            with(serde_json::json!({"kid": "new-1", "alg": "ML-DSA-44"})),
            with(serde_json::json!({"kid": "sign-only", "key_ops": ["sign"]})),
            serde_json::json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "AKP", "kid": "pq", "pub": "AA"}),
        ];
        let set = KeySet::parse(&jwks_with(&extra)).expect("usable keys remain");
        assert_eq!(algorithms(&set), PUBLIC_KEY_ALGORITHMS);
        let skipped: Vec<_> = set
            .skipped()
            .iter()
            .map(|key| (key.index, key.key_id.as_deref()))
            .collect();
        assert_eq!(
            skipped,
            [
                (3, Some("enc-1")),
                (4, Some("ps-1")),
                (5, Some("new-1")),
                (6, Some("sign-only")),
                (7, Some("p384")),
                (8, Some("pq")),
            ]
        );
        let only_skipped = serde_json::json!({"keys": [extra[0].clone()]}).to_string();
        assert!(matches!(
            KeySet::parse(&only_skipped),
            Err(KeyError::NoneUsable { skipped }) if skipped.contains("enc-1")
        ));
        // A shared secret is refused even under an algorithm it does not verify.
        let secret = serde_json::json!({"kty": "oct", "alg": "HS256", "k": "c2VjcmV0"});
        assert!(matches!(
            KeySet::parse(&jwks_with(&[secret])),
            Err(KeyError::Unsupported { index: 3, .. })
        ));
        // A key of an accepted kind that cannot be read refuses the file.
        let broken = serde_json::json!({"kty": "RSA", "alg": "RS256", "n": 5});
        assert!(matches!(
            KeySet::parse(&jwks_with(&[broken])),
            Err(KeyError::BadJwk { index: 3, .. })
        ));
    }

    #[test]
    fn a_pem_block_cut_short_or_not_a_public_key_refuses_the_file() {
        let (rsa, ec) = (PEMS[0].0, PEMS[1].0);
        let whole = format!("{rsa}{ec}");
        let cut = &whole[..whole.len() - 40];
        assert!(matches!(
            KeySet::parse(cut),
            Err(KeyError::Truncated { index: 1 })
        ));
        let begin_only = format!("{rsa}-----BEGIN PUBLIC KEY-----\nMFkw");
        assert!(matches!(
            KeySet::parse(&begin_only),
            Err(KeyError::Truncated { index: 1 })
        ));
        let with_text = format!("issued for wallex\n{rsa}\nrotated today\n{ec}");
        assert_eq!(
            algorithms(&KeySet::parse(&with_text).expect("text between blocks")),
            [Algorithm::RS256, Algorithm::ES256]
        );
        for private in [
            include_str!("../testdata/rsa_private.pem"),
            include_str!("../testdata/ec_private.pem"),
            include_str!("../testdata/ed_private.pem"),
        ] {
            assert!(matches!(
                KeySet::parse(private),
                Err(KeyError::Unsupported { index: 0, reason }) if reason.contains("private key")
            ));
        }
        let pkcs1 = include_str!("../testdata/rsa_public_pkcs1.pem");
        assert_eq!(
            algorithms(&KeySet::parse(pkcs1).expect("a PKCS #1 key")),
            [Algorithm::RS256]
        );
        let mislabelled = rsa.replace("PUBLIC KEY", "RSA PUBLIC KEY");
        assert!(matches!(
            KeySet::parse(&mislabelled),
            Err(KeyError::Unsupported { index: 0, reason }) if reason.contains("PKCS #1")
        ));
        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            KeySet::parse(certificate),
            Err(KeyError::Unsupported { index: 0, reason }) if reason.contains("CERTIFICATE")
        ));
    }

    #[test]
    fn a_rotation_that_adds_an_encryption_key_still_removes_the_old_key() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("keys.json");
        std::fs::write(&path, include_str!("../testdata/jwks.json")).expect("write");
        let file = KeyFile::open(path.clone(), Duration::ZERO).expect("opens");
        let mut set: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/jwks.json")).expect("json");
        let keys = set["keys"].as_array_mut().expect("keys");
        let mut encryption = keys.remove(0);
        encryption["kid"] = "enc-1".into();
        encryption["use"] = "enc".into();
        encryption["alg"] = "RSA-OAEP".into();
        keys.push(encryption);
        std::fs::write(&path, set.to_string()).expect("rotate");
        let current = file.current();
        let ids: Vec<_> = current
            .keys()
            .iter()
            .map(|key| key.key_id.as_deref())
            .collect();
        assert_eq!(ids, [Some("ec-1"), Some("ed-1")]);
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

        assert_eq!(file.refused_change(), None);

        std::fs::write(&path, "half written").expect("break");
        assert_eq!(
            algorithms(&file.current()),
            [Algorithm::RS256, Algorithm::EdDSA]
        );
        assert!(file
            .refused_change()
            .is_some_and(|error| error.contains("no public key")));
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(file.current().keys().len(), 2);
        assert!(file
            .refused_change()
            .is_some_and(|error| error.contains("cannot read")));
        std::fs::write(&path, PEMS[1].0).expect("mended");
        assert_eq!(algorithms(&file.current()), [Algorithm::ES256]);
        assert_eq!(file.refused_change(), None);
    }

    #[test]
    fn the_refused_change_is_the_file_as_it_is_without_a_token_verified() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("keys.pem");
        std::fs::write(&path, PEMS[1].0).expect("write");
        let file = KeyFile::open(path.clone(), Duration::ZERO).expect("opens");
        std::fs::write(&path, PEMS[2].0.repeat(KEYS_PER_FILE_MAX + 1)).expect("too many");
        assert!(file
            .refused_change()
            .is_some_and(|error| error.contains(&format!("more than {KEYS_PER_FILE_MAX}"))));
        std::fs::write(&path, PEMS[2].0).expect("mended");
        assert_eq!(file.refused_change(), None);
        assert_eq!(algorithms(&file.current()), [Algorithm::EdDSA]);
    }

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read_as_keys() {
        let folder = tempfile::tempdir().expect("tempdir");
        let fifo = folder.path().join("keys.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        for path in [Path::new("/dev/zero"), folder.path(), fifo.as_path()] {
            assert!(
                matches!(
                    KeyFile::open(path.to_path_buf(), Duration::ZERO),
                    Err(KeyError::NotAFile { .. })
                ),
                "{path:?}"
            );
        }
        let large = folder.path().join("large.pem");
        let padding = " ".repeat(usize::try_from(KEY_FILE_BYTES_MAX).expect("fits"));
        std::fs::write(&large, format!("{}{padding}", PEMS[1].0)).expect("write");
        assert!(matches!(
            KeyFile::open(large, Duration::ZERO),
            Err(KeyError::TooLarge { .. })
        ));

        let path = folder.path().join("keys.pem");
        std::fs::write(&path, PEMS[1].0).expect("write");
        let file = KeyFile::open(path.clone(), Duration::ZERO).expect("opens");
        std::fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink("/dev/zero", &path).expect("link");
        assert_eq!(algorithms(&file.current()), [Algorithm::ES256]);
        assert!(file
            .refused_change()
            .is_some_and(|error| error.contains("not a regular file")));
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

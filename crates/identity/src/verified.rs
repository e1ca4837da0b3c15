//! Tokens verified already: a client sends the same bearer token with every
//! request, and decoding it, checking its signature and reading its claims
//! again each time was 8.7 % of command-api's CPU on the full-stack
//! benchmark (`perf`, 2026-12-06). Envoy's `jwt_authn` filter keeps such a
//! cache (`jwt_cache_config`) for the same reason.
//!
//! An entry is the principal, the token's `exp` in whole seconds and which
//! of the key file's key sets it was verified with (a `Weak` pointer: an
//! entry does not keep a replaced key set alive, hostile tester h121 saw a
//! 1 MiB JWKS rewritten every second kept once per entry, outside the
//! cache's bound). It answers only while that key set is still the one in
//! use (a key removed from the file stops its tokens at
//! the next check of the file, as before) and while `exp`, with
//! [`crate::LEEWAY_SECONDS`], is not past; every other check of a token
//! (signature, `alg`, `iss`, `aud`, `sub`, `nbf`, the lifetime bound) gives
//! the same answer later as it gave when the token was verified. Refused
//! tokens are not kept.

use std::sync::{Arc, Weak};

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::keys::KeySet;
use crate::principal::Principal;
use crate::verify::{is_expired, AuthError};

/// Bytes of tokens kept at most (their text; each entry also counts
/// [`ENTRY_OVERHEAD_BYTES`]).
pub const VERIFIED_TOKENS_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// What an entry holds besides its token's text, in bytes (the principal's
/// subject, flags, and the key set's pointer with the allocation it keeps:
/// the key set's two list headers and counts, not its keys; rounded up).
const ENTRY_OVERHEAD_BYTES: u64 = 384;
/// Entries the cache is sized for at first (tokens of about 1 KiB).
const VERIFIED_TOKENS_ESTIMATED: usize = 16_384;

/// A verified token's answer.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    /// `exp`, in whole seconds since 1970.
    expires_at: u64,
    /// The key file's keys when it was verified; `None` without a key file.
    /// A `Weak` keeps the allocation's address, so no later key set can
    /// take it while the entry exists, but not the keys.
    file_keys: Option<Weak<KeySet>>,
}

#[derive(Clone)]
struct TokenWeight;

impl Weighter<String, Verified> for TokenWeight {
    fn weight(&self, token: &String, _verified: &Verified) -> u64 {
        token.len() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// The tokens verified already, at most [`VERIFIED_TOKENS_BYTES_MAX`] of them
/// (the least recently used leave first).
pub(crate) struct VerifiedTokens {
    cache: Cache<String, Verified, TokenWeight>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            cache: Cache::with_weighter(
                VERIFIED_TOKENS_ESTIMATED,
                VERIFIED_TOKENS_BYTES_MAX,
                TokenWeight,
            ),
        }
    }
}

impl VerifiedTokens {
    /// The answer for `token` verified before with `file_keys` (the key
    /// file's keys now), at `now` (seconds since 1970); `None` when it was
    /// not, or with other keys: it is then verified in full.
    pub(crate) fn recall(
        &self,
        token: &str,
        file_keys: Option<&Arc<KeySet>>,
        now: u64,
    ) -> Option<Result<Principal, AuthError>> {
        let verified = self.cache.get(token)?;
        let same_keys = match (&verified.file_keys, file_keys) {
            (Some(then), Some(now)) => std::ptr::eq(then.as_ptr(), Arc::as_ptr(now)),
            (None, None) => true,
            _ => false,
        };
        if !same_keys {
            return None;
        }
        if is_expired(verified.expires_at, now) {
            return Some(Err(AuthError::Expired));
        }
        Some(Ok(verified.principal))
    }

    /// Keeps `principal` as `token`'s answer until `expires_at` (seconds
    /// since 1970), for as long as the key file holds `file_keys`.
    pub(crate) fn remember(
        &self,
        token: &str,
        principal: &Principal,
        expires_at: u64,
        file_keys: Option<&Arc<KeySet>>,
    ) {
        self.cache.insert(
            token.to_owned(),
            Verified {
                principal: principal.clone(),
                expires_at,
                file_keys: file_keys.map(Arc::downgrade),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::LEEWAY_SECONDS;

    fn principal() -> Principal {
        Principal::authenticated("user-1".into(), "wallets")
    }

    fn keys() -> Arc<KeySet> {
        Arc::new(KeySet::default())
    }

    #[test]
    fn a_token_never_verified_is_not_recalled() {
        assert!(VerifiedTokens::default()
            .recall("a.b.c", None, 100)
            .is_none());
    }

    #[test]
    fn a_verified_token_answers_until_its_exp_and_the_leeway_pass() {
        let tokens = VerifiedTokens::default();
        tokens.remember("a.b.c", &principal(), 1_000, None);
        let at = |now| tokens.recall("a.b.c", None, now);
        assert_eq!(at(1_000), Some(Ok(principal())));
        assert_eq!(at(1_000 + LEEWAY_SECONDS), Some(Ok(principal())));
        assert_eq!(at(1_001 + LEEWAY_SECONDS), Some(Err(AuthError::Expired)));
    }

    #[test]
    fn a_token_verified_with_other_keys_is_verified_again() {
        let tokens = VerifiedTokens::default();
        let then = keys();
        tokens.remember("a.b.c", &principal(), 1_000, Some(&then));
        assert_eq!(
            tokens.recall("a.b.c", Some(&then), 10),
            Some(Ok(principal()))
        );
        assert!(tokens.recall("a.b.c", Some(&keys()), 10).is_none());
        assert!(tokens.recall("a.b.c", None, 10).is_none());
    }

    #[test]
    fn an_entry_does_not_keep_the_key_set_it_was_verified_with() {
        let tokens = VerifiedTokens::default();
        let then = keys();
        tokens.remember("a.b.c", &principal(), 1_000, Some(&then));
        assert_eq!(Arc::strong_count(&then), 1);
        let replaced = Arc::downgrade(&then);
        drop(then);
        assert!(replaced.upgrade().is_none(), "the replaced keys are freed");
        assert!(tokens.recall("a.b.c", Some(&keys()), 10).is_none());
    }

    #[test]
    fn another_token_of_the_same_principal_is_not_recalled() {
        let tokens = VerifiedTokens::default();
        tokens.remember("a.b.c", &principal(), 1_000, None);
        assert!(tokens.recall("a.b.d", None, 10).is_none());
    }
}

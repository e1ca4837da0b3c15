//! Who is calling: the token's subject and the scopes it was granted.

use std::fmt;

/// What a token's `scope` claim may grant; other words in the claim are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An end user: `sub` is the `ownerId` of the wallets it may use.
    Wallets,
    /// A payment gateway: credits any wallet, creates wallets with an opening balance.
    Deposits,
    /// An operator: everything.
    Admin,
}

impl Scope {
    /// The word of this scope in a token's space-separated `scope` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Wallets => "wallets",
            Scope::Deposits => "deposits",
            Scope::Admin => "admin",
        }
    }

    /// The scope a claim word names; `None` for a word Wallex does not use.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "wallets" => Some(Scope::Wallets),
            "deposits" => Some(Scope::Deposits),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The caller of a request, once its token is verified (or the open mode's
/// caller, who may do everything and has no subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    subject: Option<String>,
    wallets: bool,
    deposits: bool,
    admin: bool,
}

impl Principal {
    /// A verified token's caller: `subject` is its `sub`, `scope` its
    /// `scope` claim, words separated by the ASCII space only (RFC 6749
    /// §3.3: `scope-token *( SP scope-token )`); unknown words are ignored.
    /// Any other whitespace (a tab, U+00A0, U+3000) is part of a word, so
    /// `"wallets\u{a0}admin"` is one unknown word, not two scopes.
    pub fn authenticated(subject: String, scope: &str) -> Self {
        let scopes: Vec<Scope> = scope.split(' ').filter_map(Scope::parse).collect();
        Self {
            subject: Some(subject),
            wallets: scopes.contains(&Scope::Wallets),
            deposits: scopes.contains(&Scope::Deposits),
            admin: scopes.contains(&Scope::Admin),
        }
    }

    /// The caller when authentication is off (`AUTH=none`, or the embedded
    /// default on loopback): no subject, every right, as the seed's open API.
    pub fn open() -> Self {
        Self {
            subject: None,
            wallets: true,
            deposits: true,
            admin: true,
        }
    }

    /// The token's `sub`; `None` in the open mode.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Whether the token granted `scope` (the open mode's caller has them all).
    pub fn has(&self, scope: Scope) -> bool {
        match scope {
            Scope::Wallets => self.wallets,
            Scope::Deposits => self.deposits,
            Scope::Admin => self.admin,
        }
    }

    /// Whether the wallets of `owner_id` are this caller's own.
    pub fn owns(&self, owner_id: &str) -> bool {
        self.wallets && self.subject.as_deref() == Some(owner_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_the_known_words_of_the_claim() {
        let principal = Principal::authenticated("user-1".into(), "openid  wallets profile");
        assert!(principal.has(Scope::Wallets));
        assert!(!principal.has(Scope::Deposits));
        assert!(!principal.has(Scope::Admin));
        assert_eq!(principal.subject(), Some("user-1"));
        assert!(principal.owns("user-1"));
        assert!(!principal.owns("user-2"));
    }

    #[test]
    fn only_the_ascii_space_separates_scopes() {
        for separator in [
            "\t", "\n", "\r", "\u{a0}", "\u{2003}", "\u{2028}", "\u{3000}", ",",
        ] {
            let claim = format!("wallets{separator}admin");
            let principal = Principal::authenticated("user-1".into(), &claim);
            assert!(
                !principal.has(Scope::Admin) && !principal.has(Scope::Wallets),
                "{claim:?} is one unknown word"
            );
        }
        let principal = Principal::authenticated("user-1".into(), "wallets admin");
        assert!(principal.has(Scope::Admin) && principal.has(Scope::Wallets));
    }

    #[test]
    fn owning_needs_the_wallets_scope() {
        let gateway = Principal::authenticated("user-1".into(), "deposits");
        assert!(!gateway.owns("user-1"));
        let open = Principal::open();
        assert!(open.has(Scope::Admin) && open.subject().is_none());
    }
}

//! The access rules, pure: may this principal do this action on a wallet
//! owned by that owner? No I/O; the caller looks the owner up.
//!
//! | scope | may |
//! | --- | --- |
//! | `wallets` (`sub` = `ownerId`) | create its own wallets with no opening balance; read, debit and transfer out of its own wallets (into any wallet); place, capture and void holds on them; close them |
//! | `deposits` | credit any wallet; create wallets for anyone, with an opening balance |
//! | `admin` | everything |
//!
//! A wallet that exists but is not the caller's is [`Refusal::Concealed`]:
//! answered exactly as an unknown wallet, so ids cannot be probed.

use crate::principal::{Principal, Scope};

/// What a caller asks to do. An owner is `None` when the wallet does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `POST /wallets` for `owner_id`; `opening_balance` when `initialBalance` is above 0.
    CreateWallet {
        owner_id: &'a str,
        opening_balance: bool,
        /// An `overdraftLimit` above 0 is asked for.
        overdraft: bool,
    },
    /// `POST /wallets/{id}/credit`: money from outside.
    Credit,
    /// A debit, or the paying side of a transfer, on a wallet of `owner_id`.
    MoveOut { owner_id: Option<&'a str> },
    /// Reading a wallet of `owner_id`: the wallet, its transactions, its ledger entries and summary.
    ReadWallet { owner_id: Option<&'a str> },
    /// Closing a wallet of `owner_id` (at balance 0, no pending hold).
    Close { owner_id: Option<&'a str> },
    /// Placing, capturing or voiding a hold on a wallet of `owner_id`.
    Hold { owner_id: Option<&'a str> },
    /// Freezing, unfreezing or setting the overdraft limit of a wallet: operators only.
    Control,
    /// Operator reads across owners: `/ledger/verify`, `/ledger/reference/*`,
    /// `/ledger/transactions` of every wallet.
    Audit,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The caller's scopes do not allow it (403); the text says what would.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The wallet is not the caller's: answer as if it did not exist (404).
    #[error("the wallet is not the caller's")]
    Concealed,
}

/// Which wallets a list or a search may show the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility<'a> {
    /// Every owner's (`admin`).
    Everything,
    /// Only this owner's: the caller's own (`wallets`).
    Owner(&'a str),
}

const CREATE_FOR_OTHERS: &str =
    "A wallets token creates wallets only for its own ownerId (the token's sub); creating them for others needs the deposits or admin scope";
const CREATE_WITH_BALANCE: &str =
    "initialBalance must be 0 or absent with a wallets token; an opening balance needs the deposits or admin scope";
const CREATE_NEEDS: &str = "Creating a wallet needs the wallets, deposits or admin scope";
const CREDIT_NEEDS: &str = "Crediting a wallet needs the deposits or admin scope";
const MOVE_OUT_NEEDS: &str =
    "Debits and transfers need the wallets scope (on the caller's own wallets) or the admin scope";
const READ_NEEDS: &str =
    "Reading wallets needs the wallets scope (the caller's own wallets) or the admin scope";
const AUDIT_NEEDS: &str = "This call needs the admin scope";
const CREATE_WITH_OVERDRAFT: &str = "An overdraftLimit above 0 needs the admin scope";
const CLOSE_NEEDS: &str =
    "Closing a wallet needs the wallets scope (the caller's own wallets) or the admin scope";
const HOLD_NEEDS: &str =
    "Holds need the wallets scope (on the caller's own wallets) or the admin scope";
const CONTROL_NEEDS: &str = "Freezing, unfreezing and overdraft limits need the admin scope";

/// Whether `principal` may do `action`.
pub fn authorize(principal: &Principal, action: Action<'_>) -> Result<(), Refusal> {
    if principal.has(Scope::Admin) {
        return Ok(());
    }
    match action {
        Action::CreateWallet {
            overdraft: true, ..
        } => Err(Refusal::Forbidden(CREATE_WITH_OVERDRAFT)),
        Action::CreateWallet {
            owner_id,
            opening_balance,
            overdraft: false,
        } => {
            if principal.has(Scope::Deposits) {
                Ok(())
            } else if !principal.has(Scope::Wallets) {
                Err(Refusal::Forbidden(CREATE_NEEDS))
            } else if !principal.owns(owner_id) {
                Err(Refusal::Forbidden(CREATE_FOR_OTHERS))
            } else if opening_balance {
                Err(Refusal::Forbidden(CREATE_WITH_BALANCE))
            } else {
                Ok(())
            }
        }
        Action::Credit if principal.has(Scope::Deposits) => Ok(()),
        Action::Credit => Err(Refusal::Forbidden(CREDIT_NEEDS)),
        Action::MoveOut { owner_id } => own_wallet(principal, owner_id, MOVE_OUT_NEEDS),
        Action::ReadWallet { owner_id } => own_wallet(principal, owner_id, READ_NEEDS),
        Action::Close { owner_id } => own_wallet(principal, owner_id, CLOSE_NEEDS),
        Action::Hold { owner_id } => own_wallet(principal, owner_id, HOLD_NEEDS),
        Action::Control => Err(Refusal::Forbidden(CONTROL_NEEDS)),
        Action::Audit => Err(Refusal::Forbidden(AUDIT_NEEDS)),
    }
}

/// Which wallets `principal` may see in lists and searches.
pub fn visibility(principal: &Principal) -> Result<Visibility<'_>, Refusal> {
    if principal.has(Scope::Admin) {
        return Ok(Visibility::Everything);
    }
    match principal.subject() {
        Some(subject) if principal.has(Scope::Wallets) => Ok(Visibility::Owner(subject)),
        _ => Err(Refusal::Forbidden(READ_NEEDS)),
    }
}

/// Allowed on the caller's own wallet; concealed on anyone else's (or none)
/// when the caller holds `wallets`; forbidden without it.
fn own_wallet(
    principal: &Principal,
    owner_id: Option<&str>,
    needs: &'static str,
) -> Result<(), Refusal> {
    if !principal.has(Scope::Wallets) {
        return Err(Refusal::Forbidden(needs));
    }
    match owner_id {
        Some(owner_id) if principal.owns(owner_id) => Ok(()),
        _ => Err(Refusal::Concealed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scope: &str) -> Principal {
        Principal::authenticated("alice".into(), scope)
    }

    #[test]
    fn an_end_user_moves_and_reads_only_its_own_wallets() {
        let alice = caller("wallets");
        let actions: [fn(Option<&str>) -> Action<'_>; 2] = [
            |owner_id| Action::MoveOut { owner_id },
            |owner_id| Action::ReadWallet { owner_id },
        ];
        for action in actions {
            assert_eq!(authorize(&alice, action(Some("alice"))), Ok(()));
            assert_eq!(
                authorize(&alice, action(Some("bob"))),
                Err(Refusal::Concealed)
            );
            assert_eq!(authorize(&alice, action(None)), Err(Refusal::Concealed));
        }
        assert!(matches!(
            authorize(&alice, Action::Credit),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            authorize(&alice, Action::Audit),
            Err(Refusal::Forbidden(_))
        ));
        assert_eq!(visibility(&alice), Ok(Visibility::Owner("alice")));
    }

    #[test]
    fn an_end_user_opens_only_empty_wallets_of_its_own() {
        let alice = caller("wallets");
        let create = |owner_id, opening_balance| Action::CreateWallet {
            owner_id,
            opening_balance,
            overdraft: false,
        };
        assert_eq!(authorize(&alice, create("alice", false)), Ok(()));
        assert_eq!(
            authorize(&alice, create("alice", true)),
            Err(Refusal::Forbidden(CREATE_WITH_BALANCE))
        );
        assert_eq!(
            authorize(&alice, create("bob", false)),
            Err(Refusal::Forbidden(CREATE_FOR_OTHERS))
        );
    }

    #[test]
    fn a_gateway_credits_and_opens_but_never_moves_out_or_reads() {
        let gateway = caller("deposits");
        assert_eq!(authorize(&gateway, Action::Credit), Ok(()));
        assert_eq!(
            authorize(
                &gateway,
                Action::CreateWallet {
                    owner_id: "bob",
                    opening_balance: true,
                    overdraft: false,
                }
            ),
            Ok(())
        );
        // Forbidden whether or not the wallet exists: nothing to probe.
        for owner_id in [Some("alice"), None] {
            assert_eq!(
                authorize(&gateway, Action::MoveOut { owner_id }),
                Err(Refusal::Forbidden(MOVE_OUT_NEEDS))
            );
            assert_eq!(
                authorize(&gateway, Action::ReadWallet { owner_id }),
                Err(Refusal::Forbidden(READ_NEEDS))
            );
        }
        assert_eq!(visibility(&gateway), Err(Refusal::Forbidden(READ_NEEDS)));
    }

    #[test]
    fn an_operator_and_the_open_mode_may_do_everything() {
        for principal in [caller("admin"), Principal::open()] {
            assert_eq!(authorize(&principal, Action::Audit), Ok(()));
            assert_eq!(
                authorize(
                    &principal,
                    Action::MoveOut {
                        owner_id: Some("x")
                    }
                ),
                Ok(())
            );
            assert_eq!(visibility(&principal), Ok(Visibility::Everything));
        }
    }

    #[test]
    fn overdraft_limits_and_freezing_are_an_operators_and_closing_the_owners() {
        for scope in ["wallets", "deposits", "wallets deposits"] {
            let principal = caller(scope);
            assert_eq!(
                authorize(&principal, Action::Control),
                Err(Refusal::Forbidden(CONTROL_NEEDS))
            );
            assert_eq!(
                authorize(
                    &principal,
                    Action::CreateWallet {
                        owner_id: "alice",
                        opening_balance: false,
                        overdraft: true,
                    }
                ),
                Err(Refusal::Forbidden(CREATE_WITH_OVERDRAFT))
            );
        }
        assert_eq!(authorize(&caller("admin"), Action::Control), Ok(()));
        let alice = caller("wallets");
        assert_eq!(
            authorize(
                &alice,
                Action::Close {
                    owner_id: Some("alice")
                }
            ),
            Ok(())
        );
        assert_eq!(
            authorize(
                &alice,
                Action::Close {
                    owner_id: Some("bob")
                }
            ),
            Err(Refusal::Concealed)
        );
        assert_eq!(
            authorize(&caller("deposits"), Action::Close { owner_id: None }),
            Err(Refusal::Forbidden(CLOSE_NEEDS))
        );
    }

    #[test]
    fn an_owner_holds_on_its_own_wallets_and_an_admin_on_any() {
        let alice = caller("wallets");
        let on = |owner_id| Action::Hold { owner_id };
        assert_eq!(authorize(&alice, on(Some("alice"))), Ok(()));
        assert_eq!(authorize(&alice, on(Some("bob"))), Err(Refusal::Concealed));
        assert_eq!(authorize(&caller("admin"), on(Some("bob"))), Ok(()));
        assert_eq!(
            authorize(&caller("deposits"), on(Some("alice"))),
            Err(Refusal::Forbidden(HOLD_NEEDS))
        );
    }

    #[test]
    fn no_scope_may_do_nothing() {
        let nobody = caller("openid");
        assert!(matches!(
            authorize(
                &nobody,
                Action::CreateWallet {
                    owner_id: "alice",
                    opening_balance: false,
                    overdraft: false,
                }
            ),
            Err(Refusal::Forbidden(_))
        ));
        assert!(visibility(&nobody).is_err());
    }
}

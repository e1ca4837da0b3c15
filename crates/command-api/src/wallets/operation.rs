use wallet_domain::{Amount, Balance, Description, OwnerId, Wallet, WalletId};

/// One API operation; a transfer spans two wallets.
#[derive(Debug, Clone)]
pub enum WalletOperation {
    Create {
        wallet_id: WalletId,
        owner_id: OwnerId,
        initial_balance: Balance,
        overdraft_limit: Balance,
    },
    Credit {
        wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    Debit {
        wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    Transfer {
        from_wallet_id: WalletId,
        to_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    SetOverdraftLimit {
        wallet_id: WalletId,
        overdraft_limit: Balance,
    },
    Freeze {
        wallet_id: WalletId,
    },
    Unfreeze {
        wallet_id: WalletId,
    },
    Close {
        wallet_id: WalletId,
    },
}

impl WalletOperation {
    pub fn name(&self) -> &'static str {
        match self {
            WalletOperation::Create { .. } => "create",
            WalletOperation::Credit { .. } => "credit",
            WalletOperation::Debit { .. } => "debit",
            WalletOperation::Transfer { .. } => "transfer",
            WalletOperation::SetOverdraftLimit { .. } => "set-overdraft-limit",
            WalletOperation::Freeze { .. } => "freeze",
            WalletOperation::Unfreeze { .. } => "unfreeze",
            WalletOperation::Close { .. } => "close",
        }
    }

    pub fn wallet_ids(&self) -> Vec<&WalletId> {
        match self {
            WalletOperation::Create { wallet_id, .. }
            | WalletOperation::Credit { wallet_id, .. }
            | WalletOperation::Debit { wallet_id, .. }
            | WalletOperation::SetOverdraftLimit { wallet_id, .. }
            | WalletOperation::Freeze { wallet_id }
            | WalletOperation::Unfreeze { wallet_id }
            | WalletOperation::Close { wallet_id } => vec![wallet_id],
            WalletOperation::Transfer {
                from_wallet_id,
                to_wallet_id,
                ..
            } => vec![from_wallet_id, to_wallet_id],
        }
    }
}

/// The wallets as they are once the operation's events are stored.
#[derive(Debug, Clone)]
pub enum OperationOutcome {
    Wallet(Wallet),
    Transfer { from: Wallet, to: Wallet },
}

//! Accounts, their text form (the JSON keys of `cli.md`), and balance proofs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::crypto::{Hash, PublicKey};
use crate::merkle;

/// An account of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Account {
    /// A member; the id is the key it was admitted with, whatever key it uses now.
    Member(PublicKey),
    /// The distribution pool's effort account.
    Pool,
    /// The product-auction surplus of the current period (0 after each close).
    Surplus,
    /// The social allotment of one association (0 after each close).
    Social(String),
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Member(k) => write!(f, "{}", k.to_hex()),
            Account::Pool => f.write_str("pool"),
            Account::Surplus => f.write_str("surplus"),
            Account::Social(a) => write!(f, "social:{a}"),
        }
    }
}

/// Why a text is not an account name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an account: expected 64 lowercase hex characters, \"pool\", \"surplus\" or \"social:<association>\"")]
pub struct AccountParseError(pub String);

impl FromStr for Account {
    type Err = AccountParseError;
    fn from_str(s: &str) -> Result<Account, AccountParseError> {
        match s {
            "pool" => Ok(Account::Pool),
            "surplus" => Ok(Account::Surplus),
            _ => {
                if let Some(a) = s.strip_prefix("social:") {
                    if a.is_empty() {
                        return Err(AccountParseError(s.to_string()));
                    }
                    return Ok(Account::Social(a.to_string()));
                }
                PublicKey::from_hex(s)
                    .map(Account::Member)
                    .map_err(|_| AccountParseError(s.chars().take(80).collect()))
            }
        }
    }
}

/// What a leaf of the state tree holds: one account's balance, or the digest of
/// everything else (period, phase, auctions, contributions, keys, delegates, log digest).
#[derive(Serialize)]
pub(crate) enum LeafData<'a> {
    Account(&'a Account, i64),
    State(Hash),
}

impl LeafData<'_> {
    pub(crate) fn hash(&self) -> Hash {
        merkle::leaf(&codec::encode(self))
    }
}

/// Proof that `account` has `balance_mh` in the state with a given root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceProof {
    pub account: Account,
    pub balance_mh: i64,
    /// Where the account's leaf sits and its siblings up to the root.
    pub path: merkle::Path,
}

impl BalanceProof {
    /// Whether this proof places `account` with `balance_mh` under `root`.
    pub fn verify(&self, root: &Hash) -> bool {
        let leaf = LeafData::Account(&self.account, self.balance_mh).hash();
        merkle::verify(
            &leaf,
            self.path.index,
            self.path.count,
            &self.path.siblings,
            root,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_text_round_trips() {
        for a in [
            Account::Pool,
            Account::Surplus,
            Account::Social("north".into()),
            Account::Member(PublicKey([7; 32])),
        ] {
            assert_eq!(a.to_string().parse::<Account>(), Ok(a));
        }
        assert!("social:".parse::<Account>().is_err());
        assert!("POOL".parse::<Account>().is_err());
        assert!("ab".parse::<Account>().is_err());
    }
}

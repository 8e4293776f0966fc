//! What the console keeps in the encrypted store: users, API tokens, the setup claim.

use std::fmt;
use std::str::FromStr;

use hearth_store::{Json, Table};
use serde::{Deserialize, Serialize};

/// A console role. Every route lists the roles allowed ([`crate::routes::ROUTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Manages users, unlocks, approves; sees everything.
    Admin,
    /// Loads data, trains and serves models.
    Operator,
    /// Reads the audit log and attestation; changes nothing.
    Auditor,
}

impl UserRole {
    pub const ALL: [UserRole; 3] = [UserRole::Admin, UserRole::Operator, UserRole::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Operator => "operator",
            UserRole::Auditor => "auditor",
        }
    }

    /// The role recorded in the audit log.
    pub fn audit_role(self) -> hearth_audit::Role {
        match self {
            UserRole::Admin => hearth_audit::Role::Admin,
            UserRole::Operator => hearth_audit::Role::Operator,
            UserRole::Auditor => hearth_audit::Role::Auditor,
        }
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (admin, operator or auditor)"))
    }
}

/// A console user. The key in [`USERS`] is the name.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: UserRole,
    /// argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Who created this user (`setup` for the first admin).
    pub created_by: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// An API token. The key in [`TOKENS`] is its public id; the secret part is stored only as
/// SHA-256 (it is 256 random bits, so a slow hash adds nothing).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub id: String,
    /// The user the token acts as (with that user's current role).
    pub owner: String,
    /// A label chosen by the owner.
    pub label: String,
    pub secret_sha256: String,
    pub created: u64,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Whether the appliance has been claimed, and the hash of the current setup code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupState {
    pub claimed: bool,
    /// SHA-256 of the normalised code; replaced at every start until claimed.
    pub code_sha256: String,
}

pub const USERS: Table<str, Json<User>> = Table::new("console/users");
pub const TOKENS: Table<str, Json<ApiToken>> = Table::new("console/tokens");
pub const SETUP: Table<str, Json<SetupState>> = Table::new("console/setup");
pub const SETUP_KEY: &str = "state";

/// User names: 1 to 32 of `a-z 0-9 . _ -`, starting with a letter or digit. They appear in
/// URLs, audit records and logs, so nothing else is allowed.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=32).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ok_start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(
            "a user name is 1 to 32 characters of a-z, 0-9, '.', '_' or '-', starting with a \
             letter or digit"
                .to_owned(),
        )
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted (hashing cost is bounded by argon2, this bounds the request).
pub const MAX_PASSWORD: usize = 1024;

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!("a password has at least {MIN_PASSWORD} characters"));
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("a password has at most {MAX_PASSWORD} bytes"));
    }
    Ok(())
}

/// Token labels: 1 to 64 printable characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if (1..=64).contains(&label.chars().count()) && !label.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("a token label is 1 to 64 printable characters".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for good in ["alice", "a", "bob.smith", "ops-1", "x_y", "0day"] {
            assert_eq!(check_user_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "a/b", "é", &"a".repeat(33)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_roles() {
        assert!(check_password("short").is_err());
        assert_eq!(check_password("twelve chars"), Ok(()));
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert_eq!("auditor".parse::<UserRole>(), Ok(UserRole::Auditor));
        assert!(matches!("root".parse::<UserRole>(), Err(e) if e.contains("root")));
        let user = User {
            name: "a".into(),
            role: UserRole::Admin,
            password_hash: "$argon2id$secret".into(),
            disabled: false,
            created: 0,
            created_by: "setup".into(),
        };
        assert!(!format!("{user:?}").contains("argon2"));
    }
}

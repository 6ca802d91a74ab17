//! Who may call kefu: the roles of API keys and agent accounts, in the order
//! of what they may do (see `shared/contract.md`, "Keys and roles").

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::tickets::{named, UnknownValue};

/// What a caller may do; each role may do everything the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Front-end bots and channel gateways: answer, feedback.
    Bot,
    /// People working tickets: tickets, conversations, profiles, corrections, analytics.
    Agent,
    /// Everything, the learning loop, keys and agents included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Bot, Role::Agent, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bot => "bot",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        named("role", &Role::ALL, Role::as_str, s)
    }
}

/// Who made a request, as the audit log and ticket history name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An API key, by its id (never its secret).
    Key { id: String, role: Role },
    /// A person logged in to the workspace.
    Agent { name: String, role: Role },
    /// A loopback client of a server with no keys (protected mode).
    Local,
}

impl Caller {
    pub fn role(&self) -> Role {
        match self {
            Caller::Key { role, .. } | Caller::Agent { role, .. } => *role,
            Caller::Local => Role::Admin,
        }
    }

    /// "agent:<name>", "key:<id>" or "local".
    pub fn actor(&self) -> String {
        match self {
            Caller::Key { id, .. } => format!("key:{id}"),
            Caller::Agent { name, .. } => format!("agent:{name}"),
            Caller::Local => "local".into(),
        }
    }

    /// The agent a ticket is assigned to when the caller claims it.
    pub fn agent_name(&self) -> Option<&str> {
        match self {
            Caller::Agent { name, .. } => Some(name),
            Caller::Key { .. } | Caller::Local => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Bot < Role::Agent && Role::Agent < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().unwrap_err().to_string().contains("bot, agent, admin"));
    }

    #[test]
    fn callers_are_named_without_secrets() {
        assert_eq!(Caller::Key { id: "k1".into(), role: Role::Bot }.actor(), "key:k1");
        assert_eq!(Caller::Agent { name: "li".into(), role: Role::Agent }.actor(), "agent:li");
        assert_eq!(Caller::Local.role(), Role::Admin);
    }
}

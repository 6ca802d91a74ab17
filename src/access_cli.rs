//! `kefu keys` and `kefu agent`: API keys, data keys and agent accounts,
//! managed against the configured database; a running server sees the change
//! on its next request.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use kefu::access::Role;
use kefu::config::Config;
use kefu::service::auth;
use kefu::store::Store;
use kefu::support::progress;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make an API key; its secret is printed this once.
    Add {
        /// bot, agent or admin.
        #[arg(long)]
        role: Role,
        /// What the key is for (shown in the list).
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the keys by id and role (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it stops working at once.
    Revoke { id: String },
    /// Replace a key by a new one of the same role; the old one stops working at once.
    Rotate {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Seal every stored personal text under the current data key. With
    /// --new-key, first put a fresh key at the head of the key file.
    RotateData {
        #[arg(long)]
        new_key: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Add a workspace account; the password is read from standard input.
    Add {
        name: String,
        /// agent or admin.
        #[arg(long, default_value = "agent")]
        role: Role,
    },
    /// List the accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an account and end its sessions.
    Disable { name: String },
    /// Set an account's password (read from standard input) and end its sessions.
    Passwd { name: String },
}

#[derive(Subcommand)]
pub enum WidgetCommand {
    /// Print a customer token (HS256 JWT signed with widget.customer_token_secret) naming CUSTOMER_ID.
    Token {
        customer_id: String,
        /// Hours until it expires.
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
}

pub fn run_widget(config: &Config, command: WidgetCommand) -> Result<()> {
    match command {
        WidgetCommand::Token { customer_id, hours } => {
            let Some(secret) = config.widget_settings().customer_token_secret else {
                bail!("set widget.customer_token_secret (KEFU_WIDGET_SECRET) first: the token is signed with it");
            };
            let expires = chrono::Utc::now().timestamp() + i64::from(hours) * 3600;
            println!("{}", kefu::service::widget::mint_customer_token(&secret, &customer_id, expires));
        }
    }
    Ok(())
}

/// One line of standard input: a password is never a flag, so it stays out
/// of shell history and the process list.
fn read_password() -> Result<String> {
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

pub async fn run_keys(config: &Config, store: &Store, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Add { role, label, json } => {
            let key = auth::create_key(store, role, label.as_deref()).await?;
            print_new_key(&key, json);
        }
        KeysCommand::List { json } => {
            let keys = store.api_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no keys made with `kefu keys add` (configured api_keys are not listed)");
            } else {
                for k in keys {
                    let state = k.revoked_at.as_deref().map_or("live".to_string(), |at| format!("revoked {at}"));
                    println!("{}  {:<5}  {}  {state}  {}", k.id, k.role, k.created_at, k.label.unwrap_or_default());
                }
            }
        }
        KeysCommand::Revoke { id } => {
            auth::revoke_key(store, &id).await?;
            println!("revoked {id}");
        }
        KeysCommand::Rotate { id, json } => {
            let key = auth::rotate_key(store, &id).await?;
            if !json {
                println!("revoked {id}");
            }
            print_new_key(&key, json);
        }
        KeysCommand::RotateData { new_key, json } => rotate_data(config, store, new_key, json).await?,
    }
    Ok(())
}

fn print_new_key(key: &auth::NewKey, json: bool) {
    if json {
        println!(
            "{}",
            json!({"id": key.record.id, "role": key.record.role, "label": key.record.label, "secret": key.secret})
        );
    } else {
        println!("{} ({}): {}", key.record.id, key.record.role, key.secret);
        println!("the secret is shown this once; send it as Authorization: Bearer <secret>");
    }
}

async fn rotate_data(config: &Config, store: &Store, new_key: bool, json: bool) -> Result<()> {
    let store = if new_key {
        if config.security.data_key.is_some() {
            bail!("--new-key writes the key file, but data_key (KEFU_DATA_KEY) overrides it: put the new key first in data_key instead");
        }
        let file = config.data_key_file().context("no data key file to add a key to: set data_key_file")?;
        let id = kefu::privacy::vault::add_key_to_file(&file)?;
        if !json {
            println!("new data key {id} is first in {}", file.display());
        }
        // Reopened so the new key seals.
        super::open_store(config).await?
    } else {
        store.clone()
    };
    let total = store.sealed_row_count().await?;
    let bar = progress::bar(total, !json, "sealing stored texts");
    let rotated = store.reseal_all(&|done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&rotated)?);
    } else {
        println!(
            "{} values sealed under the current key, {} already were; {} question keys computed. \
             Restart running servers so they seal with it; older keys may leave the key set once they have.",
            rotated.resealed, rotated.current, rotated.rekeyed
        );
    }
    Ok(())
}

pub async fn run_agent(store: &Store, command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Add { name, role } => {
            auth::add_agent(store, &name, role, &read_password()?).await?;
            println!("added {role} {name}");
        }
        AgentCommand::List { json } => {
            let agents = store.agents().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
            } else {
                for a in agents {
                    let state = a.disabled_at.as_deref().map_or("enabled".to_string(), |at| format!("disabled {at}"));
                    println!("{:<24} {:<5}  {}  {state}", a.name, a.role, a.created_at);
                }
            }
        }
        AgentCommand::Disable { name } => {
            auth::disable_agent(store, &name).await?;
            println!("disabled {name}; their sessions ended");
        }
        AgentCommand::Passwd { name } => {
            auth::set_password(store, &name, &read_password()?).await?;
            println!("password of {name} set; their sessions ended");
        }
    }
    Ok(())
}

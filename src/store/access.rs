//! Who may call and what they did: API keys (hashes only), agent accounts
//! (argon2 hashes), their sessions (hashes of the tokens), the audit log, and
//! the re-sealing of stored texts under a new data key. Portable SQL (see the
//! module above).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{decoded, sealed, stamp, Store, StoreError};
use crate::access::Role;

/// An API key as it is listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub role: Role,
    pub label: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A person's workspace account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentAccount {
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// A live login session.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSession {
    pub agent: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    /// "agent:<name>", "key:<id>" or "local".
    pub actor: String,
    /// What was done: read_ticket, reveal, read_conversation, ...
    pub action: String,
    pub ticket_id: Option<String>,
    pub customer_id: Option<String>,
    /// What was revealed or changed (field names, never values).
    pub detail: Option<String>,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub ticket_id: Option<String>,
    pub customer_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// What a re-sealing changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RotatedRows {
    /// Values sealed again under the current key (or sealed for the first time).
    pub resealed: u64,
    /// Values already under the current key.
    pub current: u64,
    /// Question, answer and phone keys computed again.
    pub rekeyed: u64,
}

fn account(row: &sqlx::any::AnyRow) -> Result<AgentAccount, StoreError> {
    Ok(AgentAccount {
        name: row.try_get("name")?,
        role: decoded(row, "role")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

fn key_record(row: &sqlx::any::AnyRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        role: decoded(row, "role")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// The sealed columns: table, its id column, the column, its vault field.
const SEALED_COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("turns", "trace_id", "text", sealed::TURN_TEXT),
    ("turns", "trace_id", "answer", sealed::TURN_ANSWER),
    ("tickets", "id", "context", sealed::TICKET_CONTEXT),
    ("ticket_events", "id", "note", sealed::EVENT_NOTE),
    ("feedback", "id", "comment", sealed::FEEDBACK_COMMENT),
    ("corrections", "id", "text", sealed::CORRECTION_TEXT),
    ("corrections", "id", "answer", sealed::CORRECTION_ANSWER),
    ("corrections", "id", "note", sealed::CORRECTION_NOTE),
];

impl Store {
    pub async fn add_api_key(
        &self,
        id: &str,
        role: Role,
        secret_hash: &str,
        label: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, role, secret_hash, label, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(role.as_str())
            .bind(secret_hash)
            .bind(label)
            .bind(stamp(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The live (not revoked) key whose secret hashes to `secret_hash`.
    pub async fn api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_record).transpose()
    }

    /// Every key ever made, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter().map(key_record).collect()
    }

    /// Revokes a live key; false when no live key has that id.
    pub async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(stamp(at))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn has_live_api_keys(&self) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").fetch_one(&self.pool).await?;
        Ok(n > 0)
    }

    /// Adds an account; false when the name is taken.
    pub async fn add_agent(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if self.agent(name).await?.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO agents (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(role.as_str())
            .bind(password_hash)
            .bind(stamp(at))
            .execute(&self.writer)
            .await?;
        Ok(true)
    }

    pub async fn agent(&self, name: &str) -> Result<Option<AgentAccount>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(account).transpose()
    }

    pub async fn agents(&self) -> Result<Vec<AgentAccount>, StoreError> {
        let rows = sqlx::query("SELECT * FROM agents ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(account).collect()
    }

    /// Sets an account's password and ends its sessions; false for an unknown name.
    pub async fn set_agent_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE agents SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        end_sessions_of(&mut tx, name, at).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Disables an account and ends its sessions; false for an unknown or already disabled name.
    pub async fn disable_agent(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE agents SET disabled_at = $1 WHERE name = $2 AND disabled_at IS NULL")
            .bind(stamp(at))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        end_sessions_of(&mut tx, name, at).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn add_session(
        &self,
        token_hash: &str,
        agent: &str,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO agent_sessions (token_hash, agent, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(agent)
            .bind(stamp(at))
            .bind(stamp(expires_at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The session of a token hash, while it is live and its account enabled.
    pub async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<AgentSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.agent, s.expires_at, a.role FROM agent_sessions s JOIN agents a ON a.name = s.agent
             WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND a.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(stamp(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: String = row.try_get("expires_at")?;
        Ok(Some(AgentSession {
            agent: row.try_get("agent")?,
            role: decoded(&row, "role")?,
            expires_at: DateTime::parse_from_rfc3339(&expires_at)
                .map_err(|e| super::decode_error("expires_at", e))?
                .with_timezone(&Utc),
        }))
    }

    pub async fn end_session(&self, token_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE agent_sessions SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL")
            .bind(stamp(at))
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Writes one audit line.
    pub async fn add_audit(
        &self,
        actor: &str,
        action: &str,
        ticket_id: Option<&str>,
        customer_id: Option<&str>,
        detail: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (id, at, actor, action, ticket_id, customer_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(stamp(at))
        .bind(actor)
        .bind(action)
        .bind(ticket_id)
        .bind(customer_id)
        .bind(detail)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Audit lines matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit
             WHERE (CAST($1 AS TEXT) IS NULL OR actor = $1) AND (CAST($2 AS TEXT) IS NULL OR ticket_id = $2)
               AND (CAST($3 AS TEXT) IS NULL OR customer_id = $3)
               AND (CAST($4 AS TEXT) IS NULL OR at >= $4) AND (CAST($5 AS TEXT) IS NULL OR at < $5)
             ORDER BY at DESC, id LIMIT $6",
        )
        .bind(filter.actor.as_deref())
        .bind(filter.ticket_id.as_deref())
        .bind(filter.customer_id.as_deref())
        .bind(filter.from.map(stamp))
        .bind(filter.to.map(stamp))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    ticket_id: row.try_get("ticket_id")?,
                    customer_id: row.try_get("customer_id")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Seals every stored text under the current data key (those in clear or
    /// under an older key) and computes the question and answer keys again;
    /// `progress` is called after each row with the rows done so far.
    pub async fn reseal_all(&self, progress: &dyn Fn(u64)) -> Result<RotatedRows, StoreError> {
        let mut rotated = RotatedRows::default();
        let mut done = 0;
        for (table, id_column, column, field) in SEALED_COLUMNS {
            let rows = sqlx::query(&format!(
                "SELECT {id_column} AS id, {column} AS value FROM {table} WHERE {column} IS NOT NULL"
            ))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let (id, stored): (String, String) = (row.try_get("id")?, row.try_get("value")?);
                if self.vault.is_current(&stored) {
                    rotated.current += 1;
                } else {
                    let plain = self.vault.open(field, &stored)?;
                    sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {id_column} = $2 AND {column} = $3"))
                        .bind(self.vault.seal(field, &plain))
                        .bind(&id)
                        .bind(&stored)
                        .execute(&self.writer)
                        .await?;
                    rotated.resealed += 1;
                }
                done += 1;
                progress(done);
            }
        }
        let tickets = sqlx::query("SELECT id, context FROM tickets").fetch_all(&self.pool).await?;
        for row in tickets {
            let context = self.opened(&row, "context", sealed::TICKET_CONTEXT)?;
            let context = serde_json::from_str(&context).unwrap_or_default();
            sqlx::query("UPDATE tickets SET phone_key = $1 WHERE id = $2")
                .bind(self.context_phone_key(&context))
                .bind(row.try_get::<String, _>("id")?)
                .execute(&self.writer)
                .await?;
            rotated.rekeyed += 1;
            done += 1;
            progress(done);
        }
        let turns = sqlx::query("SELECT trace_id, text, answer FROM turns").fetch_all(&self.pool).await?;
        for row in turns {
            let text = self.opened(&row, "text", sealed::TURN_TEXT)?;
            let answer = self.opened_optional(&row, "answer", sealed::TURN_ANSWER)?;
            sqlx::query("UPDATE turns SET text_key = $1, answer_key = $2 WHERE trace_id = $3")
                .bind(self.question_key(&text))
                .bind(answer.map(|a| self.answer_key(&a)))
                .bind(row.try_get::<String, _>("trace_id")?)
                .execute(&self.writer)
                .await?;
            rotated.rekeyed += 1;
            done += 1;
            progress(done);
        }
        Ok(rotated)
    }

    /// Rows [`Store::reseal_all`] will visit, for its progress bar.
    pub async fn sealed_row_count(&self) -> Result<u64, StoreError> {
        let mut n = 0i64;
        for (table, _, column, _) in SEALED_COLUMNS {
            n += sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL"))
                .fetch_one(&self.pool)
                .await?;
        }
        for table in ["turns", "tickets"] {
            n += sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await?;
        }
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

async fn end_sessions_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    agent: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE agent_sessions SET ended_at = $1 WHERE agent = $2 AND ended_at IS NULL")
        .bind(stamp(at))
        .bind(agent)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::privacy::vault::Vault;
    use crate::store::testing::{open_handoff_ticket, test_stores};

    #[tokio::test]
    async fn keys_agents_and_sessions_round_trip() {
        for t in test_stores().await {
            let store = &t.store;
            let now = Utc::now();
            store.add_api_key("k1", Role::Bot, "hash1", Some("web widget"), now).await.unwrap();
            assert_eq!(store.api_key_by_hash("hash1").await.unwrap().unwrap().role, Role::Bot);
            assert!(store.has_live_api_keys().await.unwrap());
            assert!(store.revoke_api_key("k1", now).await.unwrap());
            assert!(!store.revoke_api_key("k1", now).await.unwrap(), "{}: revoked twice", t.backend);
            assert!(store.api_key_by_hash("hash1").await.unwrap().is_none());
            assert!(!store.has_live_api_keys().await.unwrap());

            assert!(store.add_agent("li", Role::Agent, "argon", now).await.unwrap());
            assert!(!store.add_agent("li", Role::Admin, "argon", now).await.unwrap(), "name taken");
            store.add_session("s1", "li", now, now + chrono::Duration::hours(1)).await.unwrap();
            assert_eq!(store.session("s1", now).await.unwrap().unwrap().agent, "li");
            assert!(store.session("s1", now + chrono::Duration::hours(2)).await.unwrap().is_none(), "expired");
            assert!(store.set_agent_password("li", "argon2", now).await.unwrap());
            assert!(store.session("s1", now).await.unwrap().is_none(), "a new password ends sessions");
            store.add_session("s2", "li", now, now + chrono::Duration::hours(1)).await.unwrap();
            assert!(store.disable_agent("li", now).await.unwrap());
            assert!(store.session("s2", now).await.unwrap().is_none(), "disabled");
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn audit_lines_filter_by_actor_and_ticket() {
        for t in test_stores().await {
            let now = Utc::now();
            t.store.add_audit("agent:li", "reveal", Some("T1"), Some("c1"), Some("phone"), now).await.unwrap();
            t.store.add_audit("agent:wang", "read_ticket", Some("T2"), None, None, now).await.unwrap();
            let filter = AuditFilter { actor: Some("agent:li".into()), limit: 10, ..Default::default() };
            let lines = t.store.audit(&filter).await.unwrap();
            assert_eq!(lines.len(), 1, "{}", t.backend);
            assert_eq!((lines[0].action.as_str(), lines[0].detail.as_deref()), ("reveal", Some("phone")));
            let filter = AuditFilter { ticket_id: Some("T2".into()), limit: 10, ..Default::default() };
            assert_eq!(t.store.audit(&filter).await.unwrap()[0].actor, "agent:wang");
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn resealing_moves_every_text_to_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kefu.db", dir.path().display());
        let old_line = format!("old {}", base64_key());
        let old = Store::open(&url, Arc::new(Vault::parse(&old_line).unwrap())).await.unwrap();
        open_handoff_ticket(&old, "T1", Utc::now()).await;
        old.add_feedback("trace-T1", false, Some("我叫王小明"), Utc::now()).await.unwrap();
        old.pool.close().await;

        let new_line = format!("new {}", base64_key());
        let both = Vault::parse(&format!("{new_line}\n{old_line}")).unwrap();
        let store = Store::open(&url, Arc::new(both)).await.unwrap();
        let rotated = store.reseal_all(&|_| {}).await.unwrap();
        assert!(rotated.resealed >= 3 && rotated.current == 0, "{rotated:?}");
        assert_eq!(store.reseal_all(&|_| {}).await.unwrap().resealed, 0, "a second run has nothing to do");
        for text in store.all_stored_text().await.unwrap() {
            assert!(!text.contains("enc1:old:"), "{text}");
        }
        store.pool.close().await;
        let new_only = Store::open(&url, Arc::new(Vault::parse(&new_line).unwrap())).await.unwrap();
        let ticket = new_only.ticket("T1", Utc::now()).await.unwrap().unwrap();
        assert_eq!(ticket.conversation[0].text, "冰箱又坏了，转人工", "the old key is no longer needed");
    }

    fn base64_key() -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    }
}

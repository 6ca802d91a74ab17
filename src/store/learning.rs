//! Agent corrections as the learning loop reads them: the latest correction of
//! each text, for replaying into the live engine and for retraining.
//! Portable SQL (see the module above).

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError};

/// The correction in force for one (masked) text.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCorrection {
    pub id: String,
    /// Masked, as stored.
    pub text: String,
    /// Intent id or `oos`.
    pub intent: String,
    pub created_at: String,
}

impl Store {
    /// The latest correction of every distinct text, oldest first.
    ///
    /// NOTE: every correction row is kept (it is the agents' audit trail and
    /// what per-intent correction counts are made of); "unique per text, the
    /// latest wins" is applied here, where corrections take effect. Texts are
    /// compared after trimming, as the engine embeds them.
    pub async fn latest_corrections(&self) -> Result<Vec<StoredCorrection>, StoreError> {
        let rows = sqlx::query("SELECT id, text, intent, created_at FROM corrections ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        let mut latest: Vec<StoredCorrection> = Vec::with_capacity(rows.len());
        let mut position: HashMap<String, usize> = HashMap::new();
        for row in rows {
            let text = self.opened(&row, "text", super::sealed::CORRECTION_TEXT)?.trim().to_string();
            let correction = StoredCorrection {
                id: row.try_get("id")?,
                intent: row.try_get("intent")?,
                created_at: row.try_get("created_at")?,
                text: text.clone(),
            };
            match position.get(&text) {
                Some(&i) => latest[i] = correction,
                None => {
                    position.insert(text, latest.len());
                    latest.push(correction);
                }
            }
        }
        latest.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    #[tokio::test]
    async fn the_latest_correction_of_a_text_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::sqlite_store(dir.path()).await;
        assert!(store.latest_corrections().await.unwrap().is_empty());
        let t0 = Utc::now() - Duration::minutes(10);
        store.add_correction(None, "钱退哪了", "refund_status", None, None, t0).await.unwrap();
        store.add_correction(None, "明天下雨吗", "oos", None, None, t0 + Duration::minutes(1)).await.unwrap();
        store
            .add_correction(None, " 钱退哪了 ", "return_policy", None, Some("第二次"), t0 + Duration::minutes(2))
            .await
            .unwrap();
        store
            .add_correction(None, "电话13812345678打不通", "complaint", None, None, t0 + Duration::minutes(3))
            .await
            .unwrap();
        let latest = store.latest_corrections().await.unwrap();
        let pairs: Vec<(&str, &str)> = latest.iter().map(|c| (c.text.as_str(), c.intent.as_str())).collect();
        assert_eq!(
            pairs,
            [("明天下雨吗", "oos"), ("钱退哪了", "return_policy"), ("电话138****5678打不通", "complaint")]
        );
    }
}

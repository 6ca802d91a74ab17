//! The engine in service and its lifecycle: installing a loaded engine,
//! retraining and rolling back behind one lock, swapping versions hot, and
//! following the version pointer that `kefu rollback` or `kefu retrain`
//! beside a running server (or another replica) move, and the corrections
//! other replicas store. Requests hold an `Arc` of the engine they started
//! with, so a swap never drops or fails one.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::engine::{Engine, BASE_VERSION};
use crate::learning::versions::{Rollback, VersionReport, VersionStatus};
use crate::learning::{self, TrainError, Trainer};
use crate::store::{ClusterLock, Store, StoreError};

/// The served engine (none until the model and index are loaded) and the learning loop around it.
#[derive(Default)]
pub struct LiveEngine {
    engine: RwLock<Option<Arc<Engine>>>,
    /// Retraining and version switching; set once the engine is loaded.
    trainer: OnceLock<Arc<Trainer>>,
    /// Held by a retrain, reload or rollback: one engine swap at a time.
    swapping: Arc<Mutex<()>>,
    /// The version the pointer names when this replica could not load it.
    behind: RwLock<Option<VersionLag>>,
}

/// A version this replica should serve but cannot, and why.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct VersionLag {
    pub wanted: String,
    pub error: String,
}

/// Why a learning-loop request cannot run now.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("the learning loop is not set up yet")]
    NotReady,
    #[error("a retrain, reload or rollback is already running")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Learning(#[from] TrainError),
}

impl LiveEngine {
    /// The engine served now.
    pub fn get(&self) -> Option<Arc<Engine>> {
        self.engine.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Serves `engine` from now on.
    pub fn set(&self, engine: Arc<Engine>) {
        // A poisoned lock only means a writer panicked mid-swap; the Option inside is still whole.
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = Some(engine);
    }

    /// The version served, once an engine is.
    pub fn version(&self) -> Option<String> {
        self.get().map(|e| e.version().to_string())
    }

    /// Enables retrain, reload and rollback.
    pub fn set_trainer(&self, trainer: Arc<Trainer>) {
        let _ = self.trainer.set(trainer);
    }

    pub fn trainer(&self) -> Option<Arc<Trainer>> {
        self.trainer.get().cloned()
    }

    fn exclusive(&self) -> Result<(Arc<Trainer>, OwnedMutexGuard<()>), LiveError> {
        let trainer = self.trainer().ok_or(LiveError::NotReady)?;
        let guard = self.swapping.clone().try_lock_owned().map_err(|_| LiveError::Busy)?;
        Ok((trainer, guard))
    }

    /// [`Self::exclusive`], and the database's learning lock: a retrain or
    /// rollback moves the version pointer every replica follows.
    async fn exclusive_everywhere(
        &self,
        store: &Store,
    ) -> Result<(Arc<Trainer>, (OwnedMutexGuard<()>, ClusterLock)), LiveError> {
        let (trainer, guard) = self.exclusive()?;
        let lock = store.try_learning_lock().await?.ok_or(LiveError::Busy)?;
        Ok((trainer, (guard, lock)))
    }

    /// The version this replica fails to load, if any (shown by /readyz).
    pub fn behind(&self) -> Option<VersionLag> {
        self.behind.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_behind(&self, lag: Option<VersionLag>) {
        *self.behind.write().unwrap_or_else(PoisonError::into_inner) = lag;
    }

    /// Fits, gates and saves a new version, and serves it when promoted.
    pub async fn retrain(self: Arc<Self>, store: Store, tolerance: Option<f64>) -> Result<VersionReport, LiveError> {
        let (trainer, guard) = self.exclusive_everywhere(&store).await?;
        // NOTE: the work runs in its own task, so a caller that goes away does not
        // abandon a retrain half-way (between saving a version and serving it).
        let task = tokio::spawn(async move {
            let _guard = guard;
            let retrained = trainer.retrain(&store, tolerance, false).await?;
            if let Some(engine) = retrained.engine {
                self.install(&store, &trainer, engine).await?;
            }
            Ok::<_, TrainError>(retrained.report)
        });
        let report = task.await.map_err(|e| TrainError::Task(e.to_string()))?;
        crate::telemetry::retrain(match &report {
            Ok(r) if r.status == VersionStatus::Promoted => "promoted",
            Ok(_) => "rejected",
            Err(_) => "failed",
        });
        Ok(report?)
    }

    /// Serves the version the pointer names; true when the engine changed.
    pub async fn reload(&self, store: &Store) -> Result<bool, LiveError> {
        let (trainer, _guard) = self.exclusive()?;
        Ok(self.reload_current(store, &trainer).await?)
    }

    /// Makes the previous promoted version (or the corpus model) current and serves it.
    pub async fn rollback(&self, store: &Store) -> Result<Rollback, LiveError> {
        let (trainer, _guard) = self.exclusive_everywhere(store).await?;
        let t = trainer.clone();
        let rolled = tokio::task::spawn_blocking(move || t.versions().rollback(Utc::now()))
            .await
            .map_err(TrainError::from)?
            .map_err(TrainError::from)?;
        self.reload_current(store, &trainer).await?;
        Ok(rolled)
    }

    /// Puts `engine` in service: enterprise systems attached, warmed up, every
    /// correction taught, then swapped in.
    pub async fn install(&self, store: &Store, trainer: &Trainer, engine: Engine) -> Result<(), TrainError> {
        let engine = trainer.for_serving(engine);
        engine.warm_up().await?;
        if let Some(old) = self.get() {
            // Already embedded: no need to ask the encoder again.
            engine.teach_vectors(old.taught())?;
        }
        learning::sync_corrections(&engine, store).await?;
        let engine = Arc::new(engine);
        self.set(engine.clone());
        // A correction stored while the swap ran was taught to the old engine only.
        learning::sync_corrections(&engine, store).await?;
        tracing::info!(version = engine.version(), corrections_live = engine.taught_count(), "serving model version");
        Ok(())
    }

    /// Serves the version the pointer names, if that is not the one served;
    /// true when the engine changed.
    async fn reload_current(&self, store: &Store, trainer: &Arc<Trainer>) -> Result<bool, TrainError> {
        let pointer = trainer.versions().current().ok().flatten().unwrap_or_else(|| BASE_VERSION.to_string());
        if self.version().as_deref() == Some(pointer.as_str()) {
            return Ok(false);
        }
        let t = trainer.clone();
        // A version this replica cannot load is an error here, not the corpus
        // model: the engine served now stays until the pointer names one it can.
        let engine = tokio::task::spawn_blocking(move || t.named_engine(false)).await??;
        if self.version().as_deref() == Some(engine.version()) {
            return Ok(false);
        }
        self.install(store, trainer, engine).await?;
        Ok(true)
    }

    /// Follows the version pointer every `every`: when another process moves
    /// it, the server swaps to that version. Runs until the process ends.
    pub async fn follow_current_version(self: Arc<Self>, store: Store, every: Duration) {
        let mut last_seen: Option<Option<String>> = None;
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(trainer) = self.trainer() else { continue };
            let pointer = match trainer.versions().current() {
                Ok(p) => p,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the version pointer");
                    continue;
                }
            };
            if last_seen.as_ref() == Some(&pointer) {
                continue;
            }
            // Busy (a retrain or rollback is running): look again next time.
            let Ok(_guard) = self.swapping.clone().try_lock_owned() else { continue };
            let named = pointer.as_deref().unwrap_or(BASE_VERSION);
            match self.reload_current(&store, &trainer).await {
                Ok(changed) => {
                    if changed {
                        tracing::info!(version = named, "followed the version pointer");
                    }
                    self.set_behind(None);
                }
                Err(err) => {
                    let lag = VersionLag { wanted: named.to_string(), error: err.to_string() };
                    if self.behind().as_ref() != Some(&lag) {
                        tracing::error!(version = named, error = %err, "cannot serve the version the pointer names; keeping the current one");
                    }
                    self.set_behind(Some(lag));
                    // Tried again next time: a shared directory may not show every file yet.
                    last_seen = None;
                    continue;
                }
            }
            last_seen = Some(pointer);
        }
    }

    /// Teaches the served engine each correction another replica stores, as
    /// soon as the store hears of it, and every `catch_up` in case a signal
    /// was lost. Runs until the process ends.
    pub async fn follow_corrections(self: Arc<Self>, store: Store, catch_up: Duration) {
        let mut stored = store.corrections_changed();
        loop {
            if let Ok(Err(_)) = tokio::time::timeout(catch_up, stored.changed()).await {
                return; // the store is gone
            }
            let Some(engine) = self.get() else { continue };
            match learning::sync_corrections(&engine, &store).await {
                Ok(0) => {}
                Ok(taught) => tracing::info!(taught, "learned corrections stored by another replica"),
                Err(err) => tracing::warn!(error = %err, "cannot learn the latest corrections; trying at the next one"),
            }
        }
    }
}

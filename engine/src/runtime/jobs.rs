//! Background jobs: persisted in the catalog, run as tasks, cancellable.
//!
//! A job's row is written when it is queued, started, and finished, and its
//! progress at most a few times a second. Jobs a dead process left queued or
//! running are marked failed when the engine opens, so none stays "running"
//! forever.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::{JobFilter, JobRecord, JobStatus, Page};
use crate::error::Entity;
use crate::identity::{Action, Principal, Resource};
use crate::{Engine, Error, Result};

/// Progress callback: a fraction in 0..=1 when known, and a message.
pub type ProgressFn = Arc<dyn Fn(Option<f64>, String) + Send + Sync>;

/// How often a job's progress may be written to the catalog.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Jobs running in this process: their cancellation tokens, and the tracker
/// shutdown waits on until every job has recorded how it ended.
#[derive(Debug, Default)]
pub(crate) struct JobRegistry {
    running: Mutex<HashMap<String, CancellationToken>>,
    tasks: TaskTracker,
}

impl JobRegistry {
    fn insert(&self, id: &str, token: CancellationToken) {
        self.running
            .lock()
            .expect("job registry")
            .insert(id.to_owned(), token);
    }

    fn remove(&self, id: &str) {
        self.running.lock().expect("job registry").remove(id);
    }

    fn token(&self, id: &str) -> Option<CancellationToken> {
        self.running.lock().expect("job registry").get(id).cloned()
    }

    /// Cancels every running job (used at shutdown).
    pub(crate) fn cancel_all(&self) {
        for token in self.running.lock().expect("job registry").values() {
            token.cancel();
        }
    }

    /// Waits until every job task has ended, at most `limit`; new jobs are
    /// still tracked, so call it once nothing submits any more.
    pub(crate) async fn wait_for_all(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                jobs = self.tasks.len(),
                "jobs still running at shutdown; they are marked failed at the next start"
            );
        }
    }
}

/// What a job's work receives.
#[derive(Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: String,
    /// Fires when the job is canceled.
    pub cancel: CancellationToken,
    /// Reports progress (throttled before it reaches the catalog).
    pub progress: ProgressFn,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Queues `work` as a job of `kind` and starts it; returns the queued job.
    pub async fn submit_job<F, Fut>(
        &self,
        kind: &str,
        params: serde_json::Value,
        work: F,
    ) -> Result<JobRecord>
    where
        F: FnOnce(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<serde_json::Value>> + Send + 'static,
    {
        let now = Utc::now();
        let job = JobRecord {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.to_owned(),
            status: JobStatus::Queued,
            progress: 0.0,
            message: "queued".into(),
            attempts: 0,
            params,
            result: None,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        };
        self.catalog().insert_job(&job).await?;
        self.publish_job(&job);
        let token = CancellationToken::new();
        self.jobs().insert(&job.id, token.clone());
        let context = JobContext {
            id: job.id.clone(),
            cancel: token.clone(),
            progress: self.progress_reporter(&job.id),
        };
        let engine = self.clone();
        let mut running = job.clone();
        self.jobs().tasks.spawn(async move {
            running.status = JobStatus::Running;
            running.attempts += 1;
            running.started_at = Some(Utc::now());
            running.updated_at = Utc::now();
            running.message = "running".into();
            if let Err(e) = engine.catalog().update_job(&running).await {
                tracing::error!(job = %running.id, error = %e, "could not mark job running");
            }
            engine.publish_job(&running);
            let outcome = tokio::select! {
                () = token.cancelled() => Err(Error::Canceled),
                result = work(context) => result,
            };
            let now = Utc::now();
            running.finished_at = Some(now);
            running.updated_at = now;
            match outcome {
                Ok(result) => {
                    running.status = JobStatus::Succeeded;
                    running.progress = 1.0;
                    running.message = "done".into();
                    running.result = Some(result);
                }
                Err(Error::Canceled) => {
                    running.status = JobStatus::Canceled;
                    running.message = "canceled".into();
                }
                Err(error) => {
                    running.status = JobStatus::Failed;
                    running.message = "failed".into();
                    if matches!(error, Error::Internal(_)) {
                        tracing::error!(job = %running.id, error = %error, "job failed");
                    }
                    running.error = Some(error.to_public_json());
                }
            }
            if let Err(e) = engine.catalog().update_job(&running).await {
                tracing::error!(job = %running.id, error = %e, "could not record job outcome");
            }
            engine.publish_job(&running);
            engine.jobs().remove(&running.id);
        });
        Ok(job)
    }

    fn progress_reporter(&self, id: &str) -> ProgressFn {
        let catalog = self.catalog().clone();
        let id = id.to_owned();
        let io = tokio::runtime::Handle::current();
        let last = Arc::new(Mutex::new(Instant::now() - PROGRESS_INTERVAL));
        Arc::new(move |fraction, message| {
            let due = last
                .try_lock()
                .map(|mut at| {
                    let due = at.elapsed() >= PROGRESS_INTERVAL;
                    if due {
                        *at = Instant::now();
                    }
                    due
                })
                .unwrap_or(false);
            if due {
                let (catalog, id) = (catalog.clone(), id.clone());
                io.spawn(async move {
                    if let Err(e) = catalog.update_job_progress(&id, fraction, &message).await {
                        tracing::warn!(job = %id, error = %e, "could not record job progress");
                    }
                });
            }
        })
    }

    /// One job, if the caller may see it (a key limited to datasets sees
    /// only their jobs; others stay unknown to it).
    pub async fn job(&self, principal: &Principal, id: &str) -> Result<JobRecord> {
        principal.authorize(Action::Read, Resource::Global)?;
        let job = self.job_record(id).await?;
        if !job_visible_to(&job, principal) {
            return Err(Error::not_found(Entity::Job, id.to_owned()));
        }
        Ok(job)
    }

    /// One job, for the engine's own use.
    pub(crate) async fn job_record(&self, id: &str) -> Result<JobRecord> {
        self.catalog()
            .job(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Job, id.to_owned()))
    }

    /// A page of the jobs the caller may see, newest first, and the total
    /// count (for a key limited to datasets, pages may come up short).
    pub async fn list_jobs(
        &self,
        principal: &Principal,
        filter: &JobFilter,
        page: Page,
    ) -> Result<(Vec<JobRecord>, u64)> {
        principal.authorize(Action::Read, Resource::Global)?;
        let (mut jobs, total) = self.catalog().list_jobs(filter, page).await?;
        jobs.retain(|job| job_visible_to(job, principal));
        Ok((jobs, total))
    }

    /// Cancels a queued or running job the caller may see; canceling writes
    /// to the job's dataset, so a grant or key limit applies to it.
    pub async fn cancel_job(&self, principal: &Principal, id: &str) -> Result<JobRecord> {
        // Canceling needs no read access: a write-only key cancels its own loads.
        let job = self.job_record(id).await?;
        if !job_visible_to(&job, principal) {
            return Err(Error::not_found(Entity::Job, id));
        }
        match job.dataset() {
            Some(dataset) => principal.authorize(Action::Write, Resource::Dataset(dataset))?,
            None => principal.authorize(Action::Write, Resource::Global)?,
        }
        self.cancel_job_record(id).await
    }

    /// Cancels a job for the engine's own use (a run being canceled).
    pub(crate) async fn cancel_job_record(&self, id: &str) -> Result<JobRecord> {
        let job = self.job_record(id).await?;
        if job.status.is_terminal() {
            return Err(Error::JobFinished {
                id: id.to_owned(),
                status: job.status.as_str().into(),
            });
        }
        match self.jobs().token(id) {
            Some(token) => token.cancel(),
            None => {
                // Known to the catalog but not running here: nothing will finish it.
                let mut job = job.clone();
                job.status = JobStatus::Canceled;
                job.finished_at = Some(Utc::now());
                job.updated_at = Utc::now();
                self.catalog().update_job(&job).await?;
            }
        }
        // Give the task a moment to record the outcome, so callers usually see it.
        for _ in 0..20 {
            let current = self.job_record(id).await?;
            if current.status.is_terminal() {
                return Ok(current);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.job_record(id).await
    }

    /// Waits until a job ends (polling the catalog), for the CLI and tests.
    pub async fn wait_job(
        &self,
        principal: &Principal,
        id: &str,
        timeout: Duration,
    ) -> Result<JobRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(principal, id).await?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(timeout.as_millis() as u64));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether `principal` may see `job`: anyone who reads, except that an API
/// key limited to datasets sees only jobs on those.
pub(crate) fn job_visible_to(job: &JobRecord, principal: &Principal) -> bool {
    match (job.dataset(), principal.dataset_limit()) {
        (_, None) => true,
        (Some(dataset), Some(_)) => principal.can_see_dataset(dataset),
        (None, Some(_)) => false,
    }
}

//! The scheduler of the serving process: cron schedules and dataset
//! triggers start runs, and old events and ended sessions are pruned.

use chrono::Utc;

use super::schedule::ParsedSchedule;
use crate::{Error, Result};

/// How often the scheduler looks at the clock.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// How late a fire time may be noticed and still run under the `skip` policy.
const GRACE_SECS: i64 = 60;
/// How often old events are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// A live pipeline's schedule and triggers, cached by active version.
struct Plan {
    version: i64,
    schedule: Option<ParsedSchedule>,
    triggers: Vec<String>,
}

impl crate::Engine {
    /// Starts the scheduler (cron schedules, dataset triggers) and the hourly
    /// pruning of old events and ended sessions; they stop at [`Engine::shutdown`](crate::Engine::shutdown).
    /// Only the serving process calls this.
    pub fn start_scheduler(&self) {
        let engine = self.clone();
        let stop = self.background_token();
        tokio::spawn(async move {
            let mut plans: std::collections::HashMap<String, Plan> = Default::default();
            let mut events = engine.subscribe_all();
            let mut tick = tokio::time::interval(TICK);
            let mut prune = tokio::time::interval(PRUNE_EVERY);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = engine.fire_schedules(&mut plans).await {
                            tracing::warn!(error = %e, "scheduler tick failed");
                        }
                    }
                    _ = prune.tick() => {
                        let before = Utc::now() - chrono::Duration::from_std(engine.config().event_retention).unwrap_or(chrono::Duration::days(7));
                        match engine.catalog().prune_events(before).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(events = n, "pruned old events"),
                            Err(e) => tracing::warn!(error = %e, "could not prune events"),
                        }
                        // Sign-in purges the user's own ended sessions; this
                        // catches users who never sign in again.
                        match engine.catalog().purge_ended_sessions(None, Utc::now()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(sessions = n, "purged ended sessions"),
                            Err(e) => tracing::warn!(error = %e, "could not purge sessions"),
                        }
                    }
                    event = events.recv() => match event {
                        Ok(event) if event.kind == crate::runtime::events::kinds::DATASET_UPDATED => {
                            if let Some(dataset) = &event.dataset
                                && let Err(e) = engine.fire_triggers(&mut plans, dataset).await
                            {
                                tracing::warn!(error = %e, dataset, "dataset trigger failed");
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "scheduler fell behind the event stream; some dataset triggers may not fire");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }

    /// Refreshes the cached schedules and triggers of live pipelines.
    async fn refresh_plans(
        &self,
        plans: &mut std::collections::HashMap<String, Plan>,
    ) -> Result<Vec<crate::catalog::PipelineRecord>> {
        let live = self.catalog().live_pipelines().await?;
        plans.retain(|id, _| live.iter().any(|p| &p.id == id));
        for pipeline in &live {
            if plans
                .get(&pipeline.id)
                .is_some_and(|p| p.version == pipeline.active_version)
            {
                continue;
            }
            let version = self
                .version_record(pipeline, pipeline.active_version)
                .await?;
            let definition: super::model::PipelineDefinition =
                serde_json::from_value(version.definition)
                    .map_err(|e| Error::internal("stored pipeline definition", e))?;
            let schedule = definition
                .schedule
                .as_ref()
                .filter(|s| s.enabled && !definition.template)
                .and_then(|s| ParsedSchedule::parse(s).ok());
            let triggers = if definition.template {
                Vec::new()
            } else {
                definition
                    .triggers
                    .iter()
                    .map(|t| t.dataset.clone())
                    .collect()
            };
            plans.insert(
                pipeline.id.clone(),
                Plan {
                    version: pipeline.active_version,
                    schedule,
                    triggers,
                },
            );
        }
        Ok(live)
    }

    async fn fire_schedules(
        &self,
        plans: &mut std::collections::HashMap<String, Plan>,
    ) -> Result<()> {
        let now = Utc::now();
        for pipeline in self.refresh_plans(plans).await? {
            let Some(schedule) = plans.get(&pipeline.id).and_then(|p| p.schedule.as_ref()) else {
                continue;
            };
            let cursor = pipeline.schedule_cursor.unwrap_or(pipeline.created_at);
            let (fire, next_cursor) =
                schedule.due(cursor, now, chrono::Duration::seconds(GRACE_SECS));
            if next_cursor == cursor {
                continue;
            }
            self.catalog()
                .set_schedule_cursor(&pipeline.id, next_cursor)
                .await?;
            if let Some(fire) = fire {
                self.start_automatic_run(&pipeline.id, &format!("schedule:{}", fire.to_rfc3339()))
                    .await;
            }
        }
        Ok(())
    }

    async fn fire_triggers(
        &self,
        plans: &mut std::collections::HashMap<String, Plan>,
        dataset: &str,
    ) -> Result<()> {
        let live = self.refresh_plans(plans).await?;
        for pipeline in live {
            if plans
                .get(&pipeline.id)
                .is_some_and(|p| p.triggers.iter().any(|t| t == dataset))
            {
                self.start_automatic_run(&pipeline.id, &format!("dataset:{dataset}"))
                    .await;
            }
        }
        Ok(())
    }

    /// Starts a scheduled or triggered run, unless one of the pipeline's runs
    /// is still going (runs of one pipeline do not overlap by themselves).
    async fn start_automatic_run(&self, pipeline_id: &str, trigger: &str) {
        let busy = self
            .catalog()
            .unfinished_runs()
            .await
            .map(|runs| runs.iter().any(|r| r.pipeline_id == pipeline_id));
        match busy {
            Ok(true) => {
                tracing::info!(
                    pipeline = pipeline_id,
                    trigger,
                    "skipped: the previous run has not ended"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(pipeline = pipeline_id, error = %e, "could not check running runs");
                return;
            }
            Ok(false) => {}
        }
        let started = self
            .start_run(
                &crate::identity::Principal::local_through(crate::identity::Door::Scheduler),
                pipeline_id,
                super::runs::RunRequest::default(),
                trigger,
            )
            .await;
        match started {
            Ok((run, _)) => {
                tracing::info!(pipeline = pipeline_id, run = %run.id, trigger, "run started")
            }
            Err(e) => {
                tracing::warn!(pipeline = pipeline_id, trigger, error = %e, "could not start run")
            }
        }
    }
}

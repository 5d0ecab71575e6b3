//! Cron schedules read in a time zone: parsing, next fire times, and which
//! fire times came due since the scheduler last looked.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::model::{MissedRuns, Schedule};
use crate::{Error, Result};

/// Most fire times one look at the clock walks past.
const MAX_FIRE_TIMES_PER_TICK: usize = 100_000;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct ParsedSchedule {
    cron: Cron,
    timezone: Tz,
    missed: MissedRuns,
}

impl ParsedSchedule {
    /// Parses the expression and time zone; the error names the bad one.
    pub fn parse(schedule: &Schedule) -> Result<Self> {
        let cron = Cron::new(&schedule.cron)
            .with_seconds_optional()
            .parse()
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "schedule.cron {:?} is not a cron expression: {e}",
                    schedule.cron
                ))
            })?;
        let timezone: Tz = schedule.timezone.parse().map_err(|_| {
            Error::InvalidInput(format!(
                "schedule.timezone {:?} is not an IANA time zone (e.g. Europe/Berlin)",
                schedule.timezone
            ))
        })?;
        Ok(Self {
            cron,
            timezone,
            missed: schedule.missed,
        })
    }

    /// The next `count` fire times after `after`.
    pub fn next_times(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(count);
        let mut at = after.with_timezone(&self.timezone);
        while times.len() < count {
            match self.cron.find_next_occurrence(&at, false) {
                Ok(next) => {
                    times.push(next.with_timezone(&Utc));
                    at = next;
                }
                Err(_) => break,
            }
        }
        times
    }

    /// What to run at `now`, given the last fire time handled: `Some(fire
    /// time)` to start one run, and the new cursor either way.
    ///
    /// A fire time is due once `now` has passed it. When several are due
    /// (the server was down), `skip` runs only one that came due within the
    /// last `grace` and `run_once` runs one for all of them.
    pub fn due(
        &self,
        cursor: DateTime<Utc>,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> (Option<DateTime<Utc>>, DateTime<Utc>) {
        let mut latest_due = None;
        let mut at = cursor.with_timezone(&self.timezone);
        // A dense schedule after a long pause is walked in bounded slices,
        // one per tick, so a tick never stalls.
        for _ in 0..MAX_FIRE_TIMES_PER_TICK {
            let Ok(next) = self.cron.find_next_occurrence(&at, false) else {
                break;
            };
            let next_utc = next.with_timezone(&Utc);
            if next_utc > now {
                break;
            }
            latest_due = Some(next_utc);
            at = next;
        }
        match latest_due {
            None => (None, cursor),
            Some(fire) => {
                let run = match self.missed {
                    MissedRuns::RunOnce => Some(fire),
                    MissedRuns::Skip => (now.signed_duration_since(fire) <= grace).then_some(fire),
                };
                (run, fire)
            }
        }
    }
}

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
            let mut events = engine.subscribe();
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
                        Ok(event) if event.kind == crate::events::kinds::DATASET_UPDATED => {
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
                &crate::auth::Principal::local(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, timezone: &str, missed: MissedRuns) -> ParsedSchedule {
        ParsedSchedule::parse(&Schedule {
            cron: cron.into(),
            timezone: timezone.into(),
            missed,
            enabled: true,
        })
        .unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn fire_times_follow_the_time_zone_across_dst() {
        // 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer.
        let daily = schedule("0 6 * * *", "Europe/Berlin", MissedRuns::Skip);
        let times = daily.next_times(at("2026-03-28T12:00:00Z"), 2);
        assert_eq!(
            times,
            vec![at("2026-03-29T04:00:00Z"), at("2026-03-30T04:00:00Z")]
        );
        let winter = daily.next_times(at("2026-01-10T12:00:00Z"), 1);
        assert_eq!(winter, vec![at("2026-01-11T05:00:00Z")]);
    }

    #[test]
    fn bad_expressions_and_zones_name_the_field() {
        let bad = |cron: &str, tz: &str| {
            ParsedSchedule::parse(&Schedule {
                cron: cron.into(),
                timezone: tz.into(),
                missed: MissedRuns::Skip,
                enabled: true,
            })
            .unwrap_err()
            .to_string()
        };
        assert!(bad("61 * * * *", "UTC").contains("schedule.cron"));
        assert!(bad("0 6 * * *", "Mars/Olympus").contains("schedule.timezone"));
    }

    #[test]
    fn missed_fire_times_follow_the_policy() {
        let hourly = |missed| schedule("0 * * * *", "UTC", missed);
        let cursor = at("2026-05-01T00:00:00Z");
        let now = at("2026-05-01T05:30:00Z");
        let grace = chrono::Duration::minutes(5);
        // Down for five hours: skip runs nothing, run_once runs one.
        assert_eq!(
            hourly(MissedRuns::Skip).due(cursor, now, grace),
            (None, at("2026-05-01T05:00:00Z"))
        );
        assert_eq!(
            hourly(MissedRuns::RunOnce).due(cursor, now, grace),
            (Some(at("2026-05-01T05:00:00Z")), at("2026-05-01T05:00:00Z"))
        );
        // On time: both run.
        let now = at("2026-05-01T01:00:02Z");
        assert_eq!(
            hourly(MissedRuns::Skip).due(cursor, now, grace),
            (Some(at("2026-05-01T01:00:00Z")), at("2026-05-01T01:00:00Z"))
        );
        // Nothing due yet.
        assert_eq!(
            hourly(MissedRuns::Skip).due(cursor, at("2026-05-01T00:59:59Z"), grace),
            (None, cursor)
        );
    }
}

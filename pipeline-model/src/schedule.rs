//! Cron schedules read in a time zone: parsing, next fire times, and which
//! fire times came due since the scheduler last looked.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::model::{MissedRuns, Schedule};
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

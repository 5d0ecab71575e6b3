//! The audit log: who did what, to what, when, from where, and how it ended.
//!
//! Rows are appended in one transaction each and chained: a row's MAC is an
//! HMAC-SHA256, under a key sealed in the catalog (so someone who can edit the
//! catalog file cannot re-forge the chain without the data key), over its
//! fields and the previous row's MAC. [`Engine::verify_audit`] recomputes the
//! chain and reports the first row that was edited, inserted or deleted; the
//! sequence counter also catches rows cut off the end.

use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::catalog::{AuditFilter, AuditRecord, NewAuditRecord, Page};
use crate::identity::{Door, Principal};
use crate::{Engine, Error, Result};

/// The secret holding the audit MAC key.
pub(crate) const AUDIT_KEY_SECRET: &str = "basin:audit-mac-key";

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AuditOutcome)]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was tried and failed (bad input, a conflict, a wrong password).
    Failure,
    /// The caller was not allowed to do it.
    Denied,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Success, Self::Failure, Self::Denied]
            .into_iter()
            .find(|o| o.as_str() == value)
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Who: a username, `anonymous`, or the username a failed login tried.
    pub actor: String,
    /// What, e.g. `dataset.create`.
    pub action: String,
    /// On what, e.g. `dataset:orders`.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The request's id.
    pub request_id: Option<String>,
    /// The caller's address.
    pub source_ip: Option<String>,
    /// More about it (never secrets).
    pub details: serde_json::Value,
}

/// What [`Engine::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditVerification {
    /// Whether the whole chain is intact.
    pub valid: bool,
    /// Rows checked.
    pub rows_checked: u64,
    /// The first row that does not fit, with the reason.
    pub first_broken: Option<BrokenRow>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenRow {
    /// The sequence number of the first row that does not fit.
    pub seq: i64,
    /// Why.
    pub reason: String,
}

type HmacSha256 = Hmac<Sha256>;

/// The MAC of a row: its sequence number, the previous MAC and every field,
/// as one JSON array (unambiguous, unlike plain concatenation).
pub(crate) fn row_mac(key: &[u8], seq: i64, prev_mac: &str, entry: &NewAuditRecord) -> String {
    let fields = serde_json::json!([
        seq,
        prev_mac,
        entry.at,
        entry.actor,
        entry.action,
        entry.target,
        entry.outcome,
        entry.request_id,
        entry.source_ip,
        entry.details,
    ]);
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(fields.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Rows read per step while verifying.
const VERIFY_BATCH: u32 = 1000;

impl Engine {
    /// Records a change the engine made (or refused) for `principal`, with
    /// the door it came through and the caller's address and request id.
    ///
    /// Changes through REST are left out: REST records every state-changing
    /// request at its route, under the route's action, so each would be
    /// recorded twice (see docs/architecture.md).
    async fn audit_change<T>(
        &self,
        principal: &Principal,
        action: &str,
        target: &str,
        outcome: &Result<T>,
    ) {
        let door = principal.client.door;
        if door == Door::Rest {
            return;
        }
        let (outcome, code) = match outcome {
            Ok(_) => (Outcome::Success, None),
            Err(e @ (Error::Forbidden(_) | Error::Unauthenticated(_))) => {
                (Outcome::Denied, Some(e.code()))
            }
            Err(e) => (Outcome::Failure, Some(e.code())),
        };
        // SQL can be long: the entry names what was written, not all of it.
        let target: String = target.chars().take(200).collect();
        self.audit(AuditEvent {
            actor: principal.username.clone(),
            action: action.to_owned(),
            target,
            outcome,
            request_id: principal.client.request_id.clone(),
            source_ip: principal.client.ip.map(|ip| ip.to_string()),
            details: serde_json::json!({ "door": door.as_str(), "code": code }),
        })
        .await;
    }

    /// Runs `change` and records its outcome with [`Engine::audit_change`].
    pub(crate) async fn audited<T>(
        &self,
        principal: &Principal,
        action: &str,
        target: &str,
        change: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let outcome = change.await;
        self.audit_change(principal, action, target, &outcome).await;
        outcome
    }

    /// Appends an entry. A failure to record is logged and counted, not
    /// returned: the action it describes has already happened.
    pub async fn audit(&self, event: AuditEvent) {
        let entry = NewAuditRecord {
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            actor: event.actor,
            action: event.action,
            target: event.target,
            outcome: event.outcome.as_str().to_owned(),
            request_id: event.request_id,
            source_ip: event.source_ip,
            details: event.details.to_string(),
        };
        let key = self.inner.audit_key.clone();
        let seal =
            move |seq: i64, prev: &str, entry: &NewAuditRecord| row_mac(&key, seq, prev, entry);
        if let Err(e) = self.catalog().append_audit(&entry, &seal).await {
            metrics::counter!("basin_audit_failures_total").increment(1);
            tracing::error!(error = %e, action = %entry.action, "could not record an audit entry");
        }
    }

    /// A page of the audit log, newest first, and the total matching.
    pub async fn audit_log(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64)> {
        // Rows hold UTC with microseconds; bounds in any offset compare as that text.
        let normalize = |name: &str, value: &Option<String>| -> Result<Option<String>> {
            value
                .as_deref()
                .map(|v| {
                    chrono::DateTime::parse_from_rfc3339(v)
                        .map(|at| {
                            at.with_timezone(&Utc)
                                .to_rfc3339_opts(SecondsFormat::Micros, true)
                        })
                        .map_err(|_| {
                            Error::InvalidInput(format!("{name} must be an RFC 3339 timestamp"))
                        })
                })
                .transpose()
        };
        if let Some(outcome) = filter.outcome.as_deref()
            && Outcome::parse(outcome).is_none()
        {
            return Err(Error::InvalidInput(format!(
                "outcome {outcome:?} is not one of success, failure, denied"
            )));
        }
        let filter = AuditFilter {
            since: normalize("since", &filter.since)?,
            until: normalize("until", &filter.until)?,
            ..filter.clone()
        };
        self.catalog()
            .list_audit(&filter, page)
            .await
            .map_err(Error::from)
    }

    /// Recomputes the chain from the first row and reports the first row that
    /// was edited, inserted or deleted.
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let key = &self.inner.audit_key;
        // Rows appended while this runs are not this run's business.
        let high_water = self.catalog().audit_high_water().await?;
        let mut checked = 0u64;
        let mut expected_seq = 1i64;
        let mut prev_mac = String::new();
        let broken = |seq: i64, reason: String, checked: u64| AuditVerification {
            valid: false,
            rows_checked: checked,
            first_broken: Some(BrokenRow { seq, reason }),
        };
        loop {
            let rows = self
                .catalog()
                .audit_after(expected_seq - 1, VERIFY_BATCH)
                .await?;
            let fetched = rows.len();
            for row in rows.into_iter().filter(|r| r.seq <= high_water) {
                if row.seq != expected_seq {
                    return Ok(broken(
                        expected_seq,
                        format!(
                            "row {expected_seq} is missing (the next row is {})",
                            row.seq
                        ),
                        checked,
                    ));
                }
                if row.prev_mac != prev_mac {
                    return Ok(broken(
                        row.seq,
                        "the row does not chain onto the row before it".into(),
                        checked,
                    ));
                }
                if row.mac != row_mac(key, row.seq, &row.prev_mac, &row.entry) {
                    return Ok(broken(
                        row.seq,
                        "the row's contents do not match its MAC (edited)".into(),
                        checked,
                    ));
                }
                checked += 1;
                prev_mac = row.mac;
                expected_seq += 1;
            }
            if fetched < VERIFY_BATCH as usize || expected_seq > high_water {
                break;
            }
        }
        if high_water >= expected_seq {
            return Ok(broken(
                expected_seq,
                format!("rows {expected_seq} to {high_water} are missing from the end"),
                checked,
            ));
        }
        Ok(AuditVerification {
            valid: true,
            rows_checked: checked,
            first_broken: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str) -> NewAuditRecord {
        NewAuditRecord {
            at: "2026-11-22T10:00:00.000000Z".into(),
            actor: actor.into(),
            action: "dataset.create".into(),
            target: "dataset:orders".into(),
            outcome: "success".into(),
            request_id: None,
            source_ip: Some("127.0.0.1".into()),
            details: "{}".into(),
        }
    }

    #[test]
    fn the_mac_covers_every_field_and_the_chain() {
        let key = b"0123456789abcdef0123456789abcdef";
        let base = row_mac(key, 1, "", &entry("ann"));
        assert_eq!(base, row_mac(key, 1, "", &entry("ann")));
        assert_ne!(base, row_mac(key, 1, "", &entry("bob")));
        assert_ne!(base, row_mac(key, 2, "", &entry("ann")));
        assert_ne!(base, row_mac(key, 1, "x", &entry("ann")));
        assert_ne!(base, row_mac(b"another key", 1, "", &entry("ann")));
    }
}

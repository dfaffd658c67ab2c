//! The merge policy's pass after every merge: conflicts settled by timestamp and bookings
//! decided, written as one change of the server's own in the same storage transaction.

use automerge::transaction::CommitOptions;
use syncline_shared::policy;
use tracing::{error, info, warn};

use super::{Worker, now_s};
use crate::documents::WorkerContext;
use crate::storage::BookingEvent;

impl Worker {
    /// After a merge: settles conflicts by timestamp and decides bookings, as one change of the
    /// server's own that rides in the same storage transaction as the merge.
    pub(super) fn apply_policy(
        &mut self,
        before: &[automerge::ChangeHash],
        context: &WorkerContext,
    ) {
        let skew =
            i64::try_from(context.services.limits.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
        let future = &self.future_stamped;
        let effective = |hash: &automerge::ChangeHash, stamped: i64| match future.get(hash) {
            Some(received) => stamped.min(received.saturating_add(skew)),
            None => stamped,
        };
        let plan = policy::plan(self.session.document(), before, &context.author, effective);
        self.report_problems(plan.problems.clone());
        if plan.is_empty() {
            return;
        }
        self.log_plan(&plan);

        let now = now_s();
        let options = CommitOptions::default()
            .with_time(plan.time(now))
            .with_message(plan.message());
        match self.session.change(options, |tx| plan.apply(tx)) {
            Ok(((), effects)) => {
                self.apply(effects);
                self.decided = plan
                    .decisions
                    .iter()
                    .filter(|d| {
                        let status = d.record.status.as_str();
                        status == policy::calendar::CONFIRMED
                            || status == policy::calendar::REJECTED
                    })
                    .map(|d| BookingEvent {
                        id: d.record.booking.clone(),
                        status: d.record.status.clone(),
                    })
                    .collect();
            }
            Err(err) => {
                error!(
                    error = %err,
                    "cannot write the merge policy's change; the document keeps Automerge's winners",
                )
            }
        }
    }

    fn log_plan(&self, plan: &policy::Plan) {
        for resolution in &plan.resolutions {
            let record = &resolution.record;
            self.metrics.conflicts_resolved.inc();
            info!(
                key = %record.path,
                winner = %record.winner,
                time = record.time,
                candidates = record.candidates,
                "conflict settled by the latest write",
            );
        }
        for decision in &plan.decisions {
            let record = &decision.record;
            let status = match (record.reverted, record.status.as_str()) {
                (true, _) => "reverted",
                (false, policy::calendar::CONFIRMED) => "confirmed",
                (false, _) => "rejected",
            };
            self.metrics
                .booking_decisions
                .get_or_create(&vec![("status", status)])
                .inc();
            let reason = record.reason.as_deref().unwrap_or("");
            info!(booking = %record.booking, status = %record.status, reason, "booking decided");
        }
    }

    fn report_problems(&mut self, problems: Vec<String>) {
        if problems == self.reported_problems {
            return;
        }
        for problem in &problems {
            warn!(%problem, "calendar document has parts the server cannot use");
        }
        self.reported_problems = problems;
    }
}

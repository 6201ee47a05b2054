//! CloudWatch alarm evaluation: M of the last N periods.
//!
//! Used by rules in alarm mode (`evaluation.periods > 1`, or an explicit
//! `treat_missing`). Each closed period contributes one datapoint per key:
//! breaching, not breaching, or missing (no data). The alarm is in ALARM
//! when at least M of the last N datapoints breach, after applying the
//! treat-missing-data policy (CloudWatch semantics):
//!
//! - `missing`: missing datapoints are neither; if all N are missing the
//!   state becomes INSUFFICIENT_DATA.
//! - `not_breaching` / `breaching`: missing datapoints count as such.
//! - `ignore`: missing datapoints are skipped and the state is kept when
//!   all N are missing.
//!
//! Alerts fire only on transitions: Create on entering ALARM, Close on
//! returning to OK. The breaching datapoints need not be consecutive.

use std::collections::VecDeque;

use crate::rules::model::TreatMissing;
use crate::source::PartitionId;

/// One period's outcome for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapoint {
    Breaching,
    NotBreaching,
    Missing,
}

/// CloudWatch alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmStatus {
    Ok,
    Alarm,
    InsufficientData,
}

/// What an evaluation step asks the caller to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// Entered ALARM: emit Create.
    Raise,
    /// Returned to OK from ALARM: emit Close.
    Clear,
}

/// Alarm state of one (rule, key).
#[derive(Debug, Clone)]
pub struct AlarmState {
    history: VecDeque<Datapoint>,
    pub status: AlarmStatus,
    /// End of the last period pushed.
    pub last_period_end: i64,
    /// Window start of the period that raised the current ALARM (alert id).
    pub raised_window_start: Option<i64>,
    /// An open period already sent its Create eagerly; when that period
    /// closes and raises, the Create is not sent again.
    pub eager_raised_for: Option<i64>,
    /// Stage 2: the repartition partition that feeds this key (one key
    /// lives in one). When it is revoked the state goes with its windows:
    /// the new owner rebuilds it, and this replica must not close it.
    pub partition: Option<PartitionId>,
}

impl AlarmState {
    /// A new state: INSUFFICIENT_DATA, no history.
    pub fn new(first_period_end: i64) -> Self {
        AlarmState {
            history: VecDeque::new(),
            status: AlarmStatus::InsufficientData,
            last_period_end: first_period_end,
            raised_window_start: None,
            eager_raised_for: None,
            partition: None,
        }
    }

    /// Breaching datapoints among the `periods - 1` periods just before
    /// the open one starting at `open_start` (`width` long each). Periods
    /// after the last closed one are not known yet (still open under the
    /// allowed lateness, or not swept): they count as not breaching, so an
    /// eager raise never rests on a period outside the last N.
    pub fn recent_breaching(
        &self,
        periods: u32,
        treat: TreatMissing,
        open_start: i64,
        width: i64,
    ) -> u32 {
        let unknown = open_start.saturating_sub(self.last_period_end).max(0) / width.max(1);
        let known = i64::from(periods.saturating_sub(1))
            .saturating_sub(unknown)
            .max(0);
        self.history
            .iter()
            .rev()
            .take(known as usize)
            .filter(|d| counts_as_breaching(**d, treat))
            .count() as u32
    }

    /// Pushes a closed period's datapoint and evaluates.
    pub fn push(
        &mut self,
        datapoint: Datapoint,
        periods: u32,
        datapoints: u32,
        treat: TreatMissing,
    ) -> Transition {
        self.history.push_back(datapoint);
        while self.history.len() > periods as usize {
            self.history.pop_front();
        }
        let (front, back) = self.history.as_slices();
        let next = next_status(self.status, front.iter().chain(back), datapoints, treat);
        self.transition_to(next)
    }

    /// Evaluates a complete set of datapoints (sliding evaluation, where
    /// each step recomputes the last N periods from panes).
    pub fn evaluate(
        &mut self,
        points: &[Datapoint],
        datapoints: u32,
        treat: TreatMissing,
    ) -> Transition {
        let next = next_status(self.status, points.iter(), datapoints, treat);
        self.transition_to(next)
    }

    /// Raises eagerly (the open period already breaches and, with the
    /// closed history, reaches M). Returns `Raise` if the state changed.
    pub fn raise_eagerly(&mut self) -> Transition {
        self.transition_to(AlarmStatus::Alarm)
    }

    fn transition_to(&mut self, next: AlarmStatus) -> Transition {
        let previous = self.status;
        self.status = next;
        match (previous, next) {
            (AlarmStatus::Alarm, AlarmStatus::Alarm) => Transition::None,
            (_, AlarmStatus::Alarm) => Transition::Raise,
            (AlarmStatus::Alarm, AlarmStatus::Ok) => Transition::Clear,
            _ => Transition::None,
        }
    }

    /// Whether the state carries no information worth keeping: not in
    /// ALARM and no breaching datapoint that could count towards M. A new
    /// state behaves identically for alerting, so it can be dropped.
    pub fn is_dormant(&self) -> bool {
        self.status != AlarmStatus::Alarm && self.history.iter().all(|d| *d != Datapoint::Breaching)
    }
}

/// CloudWatch's state for the given last-N datapoints.
fn next_status<'a>(
    current: AlarmStatus,
    points: impl Iterator<Item = &'a Datapoint> + Clone,
    datapoints: u32,
    treat: TreatMissing,
) -> AlarmStatus {
    let all_missing = points.clone().all(|d| *d == Datapoint::Missing);
    let breaching = points.filter(|d| counts_as_breaching(**d, treat)).count() as u32;
    if breaching >= datapoints {
        AlarmStatus::Alarm
    } else if all_missing {
        match treat {
            TreatMissing::Missing => AlarmStatus::InsufficientData,
            TreatMissing::Ignore => current,
            TreatMissing::NotBreaching => AlarmStatus::Ok,
            TreatMissing::Breaching => AlarmStatus::Alarm,
        }
    } else {
        AlarmStatus::Ok
    }
}

fn counts_as_breaching(datapoint: Datapoint, treat: TreatMissing) -> bool {
    match datapoint {
        Datapoint::Breaching => true,
        Datapoint::NotBreaching => false,
        Datapoint::Missing => treat == TreatMissing::Breaching,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Datapoint::*;

    fn run(
        points: &[Datapoint],
        n: u32,
        m: u32,
        treat: TreatMissing,
    ) -> (Vec<Transition>, AlarmStatus) {
        let mut state = AlarmState::new(0);
        let transitions = points.iter().map(|p| state.push(*p, n, m, treat)).collect();
        (transitions, state.status)
    }

    #[test]
    fn m_of_n_need_not_be_consecutive() {
        let (t, status) = run(
            &[Breaching, NotBreaching, Breaching],
            3,
            2,
            TreatMissing::Missing,
        );
        assert_eq!(
            t,
            vec![Transition::None, Transition::None, Transition::Raise]
        );
        assert_eq!(status, AlarmStatus::Alarm);
    }

    #[test]
    fn close_on_return_to_ok() {
        let (t, _) = run(
            &[Breaching, NotBreaching, NotBreaching],
            2,
            1,
            TreatMissing::Missing,
        );
        assert_eq!(
            t,
            vec![Transition::Raise, Transition::None, Transition::Clear]
        );
    }

    #[test]
    fn treat_missing_modes() {
        let points = [Breaching, Missing, Missing];
        assert_eq!(
            run(&points, 2, 2, TreatMissing::Breaching).0[1],
            Transition::Raise
        );
        assert_eq!(
            run(&points, 2, 1, TreatMissing::NotBreaching).1,
            AlarmStatus::Ok
        );
        assert_eq!(
            run(&points, 2, 1, TreatMissing::Missing).1,
            AlarmStatus::InsufficientData
        );
        assert_eq!(
            run(&points, 2, 1, TreatMissing::Ignore).1,
            AlarmStatus::Alarm
        );
    }
}

//! Sliding evaluation, built from tumbling panes (CloudWatch parity).
//!
//! CloudWatch re-evaluates an alarm every minute over the last N periods,
//! so a burst that straddles a tumbling boundary still alarms. A rule with
//! `slide: S` keeps, per (rule, key), tumbling *panes* of width `S`; at
//! every step end `e` (a multiple of `S`) the N periods
//! `[e - (N-i)·P, e - (N-i-1)·P)` are merged from panes and evaluated as M
//! of N. Alerts follow the alarm state machine: Create on entering ALARM,
//! Close on returning to OK, so consecutive breaching steps of one burst
//! alert once.
//!
//! Steps are evaluated in order when the watermark passes them (in replay:
//! at the end of input, which makes the result independent of input
//! order). In service mode a monotone threshold may raise eagerly the
//! moment an event makes a step E breach. The state machine still sees
//! only evaluated steps: the steps before E are evaluated in their turn
//! (late input may make them breach), and E's own evaluation then finds
//! its Create already sent. An ALARM entered at an earlier step is E's
//! episode only if it lasts until E, so its Create waits (its panes are
//! kept): it goes out just before its Close if the alarm clears first,
//! and is dropped for E's if not.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::alarm::{AlarmState, AlarmStatus, Datapoint, Transition};
use super::window::WindowAgg;
use crate::alert::Activity;
use crate::rules::compile::CompiledRule;

/// One (rule, key)'s panes and alarm state.
#[derive(Debug, Clone)]
pub struct SlidingLane {
    /// Pane start -> aggregate.
    pub panes: BTreeMap<i64, WindowAgg>,
    alarm: AlarmState,
    /// Next step end to evaluate (`i64::MAX`: settled, nothing pending).
    next_step: i64,
    /// Last step end evaluated (`i64::MIN`: none yet).
    last_evaluated: i64,
    /// Step at which the lane raised eagerly, until it is evaluated.
    eager_step: Option<i64>,
    /// Window start of an ALARM entered before `eager_step`, whose Create
    /// waits to see whether the ALARM lasts until then.
    deferred: Option<i64>,
}

/// An alert the lane asks the shard to emit.
#[derive(Debug)]
pub struct LaneAlert {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub agg: WindowAgg,
    pub activity: Activity,
    /// Window start that names the alert (the period that raised ALARM).
    pub id_window_start: i64,
}

/// The datapoint of a period with no matching event: the metric's default
/// value when the rule has one (CloudWatch `defaultValue`), else missing.
pub fn empty_period(rule: &CompiledRule) -> Datapoint {
    match rule.default_value {
        Some(default) if rule.threshold.breached_by(default) => Datapoint::Breaching,
        Some(_) => Datapoint::NotBreaching,
        None => Datapoint::Missing,
    }
}

impl SlidingLane {
    /// A lane whose first event fell in the pane starting at `pane_start`.
    pub fn new(pane_start: i64, step: i64) -> Self {
        SlidingLane {
            panes: BTreeMap::new(),
            alarm: AlarmState::new(i64::MIN),
            next_step: pane_start + step,
            last_evaluated: i64::MIN,
            eager_step: None,
            deferred: None,
        }
    }

    /// Notes that an event landed in the pane starting at `pane_start`.
    pub fn touch(&mut self, pane_start: i64, step: i64) {
        let first_step = (pane_start + step).max(self.last_evaluated.saturating_add(step));
        self.next_step = self.next_step.min(first_step);
    }

    /// Merges the panes in `[start, end)`; `None` when none has data.
    fn period(&self, start: i64, end: i64, max_samples: usize) -> Option<WindowAgg> {
        let mut merged: Option<WindowAgg> = None;
        for (_, pane) in self.panes.range(start..end) {
            match merged.as_mut() {
                Some(m) => m.merge(pane, max_samples),
                None => merged = Some(pane.clone()),
            }
        }
        merged
    }

    fn datapoints(&self, end: i64, rule: &CompiledRule) -> SmallVec<[Datapoint; 8]> {
        let periods = i64::from(rule.evaluation.periods);
        (0..periods)
            .map(|i| {
                let start = end - (periods - i) * rule.window_ms;
                match self.period(start, start + rule.window_ms, 0) {
                    None => empty_period(rule),
                    Some(agg) if rule.threshold.breached_by(agg.value(rule.aggregate)) => {
                        Datapoint::Breaching
                    }
                    Some(_) => Datapoint::NotBreaching,
                }
            })
            .collect()
    }

    /// Eager check after an event landed in `pane_start`: raises if a
    /// not-yet-evaluated step containing the pane now reaches M of N.
    pub fn try_raise_eagerly(
        &mut self,
        pane_start: i64,
        rule: &CompiledRule,
        max_samples: usize,
    ) -> Option<LaneAlert> {
        let step = rule.slide_ms?;
        if !rule.eager || self.alarm.status == AlarmStatus::Alarm || self.eager_step.is_some() {
            return None;
        }
        let ev = rule.evaluation;
        let mut end = pane_start + step;
        while end <= pane_start + rule.window_ms {
            if end >= self.next_step {
                let points = self.datapoints(end, rule);
                let breaching = points
                    .iter()
                    .filter(|d| **d == Datapoint::Breaching)
                    .count() as u32;
                if points.last() == Some(&Datapoint::Breaching) && breaching >= ev.datapoints {
                    self.eager_step = Some(end);
                    let agg = self.period(end - rule.window_ms, end, max_samples)?;
                    return Some(LaneAlert {
                        window_start_ms: end - rule.window_ms,
                        window_end_ms: end,
                        agg,
                        activity: Activity::Create,
                        id_window_start: end - rule.window_ms,
                    });
                }
            }
            end += step;
        }
        None
    }

    /// Evaluates every step up to `limit` in order. Panes no step will
    /// need again are removed; their aggregates are returned through
    /// `released` so the caller can drop their commit holds.
    pub fn evaluate_until(
        &mut self,
        limit: i64,
        rule: &CompiledRule,
        max_samples: usize,
        out: &mut Vec<LaneAlert>,
        released: &mut Vec<WindowAgg>,
    ) {
        let Some(step) = rule.slide_ms else { return };
        let span = i64::from(rule.evaluation.periods) * rule.window_ms;
        let ev = rule.evaluation;
        while self.next_step != i64::MAX && self.next_step <= limit {
            let end = self.next_step;
            self.last_evaluated = end;
            let all_empty = self.panes.range(end - span..end).next().is_none();
            let points = self.datapoints(end, rule);
            let transition = self
                .alarm
                .evaluate(&points, ev.datapoints, ev.treat_missing);
            let window_start = end - rule.window_ms;
            let eager = self.eager_step;
            if eager.is_some_and(|eager| eager <= end) {
                self.eager_step = None;
            }
            match transition {
                Transition::Raise => {
                    self.alarm.raised_window_start = Some(window_start);
                    match eager {
                        // Its Create went out eagerly.
                        Some(eager) if eager == end => {}
                        Some(eager) if eager > end => self.deferred = Some(window_start),
                        _ => out.push(self.alert(
                            window_start,
                            end,
                            Activity::Create,
                            window_start,
                            rule,
                            max_samples,
                        )),
                    }
                }
                Transition::Clear => {
                    out.extend(self.take_deferred_create(rule, max_samples));
                    let id_start = self.alarm.raised_window_start.unwrap_or(window_start);
                    out.push(self.alert(
                        window_start,
                        end,
                        Activity::Close,
                        id_start,
                        rule,
                        max_samples,
                    ));
                }
                Transition::None => {}
            }
            if self.alarm.status != AlarmStatus::Alarm {
                // Left ALARM without a Close (INSUFFICIENT_DATA) before the
                // eager step: the deferred episode was its own.
                out.extend(self.take_deferred_create(rule, max_samples));
            } else if let Some(eager) = eager.filter(|eager| *eager <= end) {
                // ALARM lasted from the deferred step to the eager one: one
                // episode, named by the Create that went out.
                if self.deferred.take().is_some() {
                    self.alarm.raised_window_start = Some(eager - rule.window_ms);
                }
            }
            // Panes before the next step's span are never read again, but
            // for a deferred Create's.
            let keep_from = self
                .deferred
                .map_or(end + step - span, |start| start.min(end + step - span));
            while let Some(entry) = self.panes.first_entry() {
                if *entry.key() >= keep_from {
                    break;
                }
                released.push(entry.remove());
            }
            // After an all-empty step, every step until the next pane's
            // span evaluates the same way: jump past them.
            self.next_step = if all_empty {
                match self.panes.range(end..).next() {
                    Some((first, _)) => (first + step).max(end + step),
                    None => i64::MAX,
                }
            } else {
                end + step
            };
        }
    }

    /// The deferred Create, if any, now that its episode is known to be
    /// its own.
    fn take_deferred_create(
        &mut self,
        rule: &CompiledRule,
        max_samples: usize,
    ) -> Option<LaneAlert> {
        let start = self.deferred.take()?;
        Some(self.alert(
            start,
            start + rule.window_ms,
            Activity::Create,
            start,
            rule,
            max_samples,
        ))
    }

    /// The alert of `activity` for the window `[start, end)`, named by
    /// `id_start`.
    fn alert(
        &self,
        start: i64,
        end: i64,
        activity: Activity,
        id_start: i64,
        rule: &CompiledRule,
        max_samples: usize,
    ) -> LaneAlert {
        LaneAlert {
            window_start_ms: start,
            window_end_ms: end,
            agg: self
                .period(start, end, max_samples)
                .unwrap_or_else(|| WindowAgg::new(rule.aggregate)),
            activity,
            id_window_start: id_start,
        }
    }

    /// Whether the lane holds nothing worth keeping.
    pub fn is_idle(&self) -> bool {
        self.panes.is_empty()
            && self.alarm.is_dormant()
            && self.eager_step.is_none()
            && self.deferred.is_none()
    }
}

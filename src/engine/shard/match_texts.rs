//! A match's evidence texts, read lazily.
//!
//! A [`Match`] names its texts (event id, sample line, account, region) as
//! spans of its [`MatchBatch`]'s arena. [`MatchTexts`] carries those spans
//! to a window, which reads them only while it keeps evidence: most matches
//! of a busy window come after its samples are kept, and read nothing.
//! Contract: each text reads as [`MatchBatch::text`] would give it.

use super::{span_text, Match, MatchBatch, Span};
use crate::engine::window::{EvidenceLimits, WindowAgg};

/// A match's evidence texts, still spans of its batch's arena: a window
/// reads them only while it keeps evidence (most matches of a busy window
/// come after it is full).
#[derive(Debug, Clone, Copy)]
pub struct MatchTexts<'a> {
    arena: &'a str,
    id: Span,
    sample: Span,
    account: Span,
    region: Span,
}

impl<'a> MatchTexts<'a> {
    /// The texts of `m`, a match of `batch`.
    pub fn of(batch: &'a MatchBatch, m: &Match) -> Self {
        MatchTexts {
            arena: &batch.arena,
            id: m.id,
            sample: m.sample,
            account: m.account,
            region: m.region,
        }
    }

    /// Texts of their own, for tests (their arena is leaked, so that the
    /// texts outlive the call).
    #[cfg(test)]
    pub fn of_texts(
        id: Option<&str>,
        sample: &str,
        account: Option<&str>,
        region: Option<&str>,
    ) -> MatchTexts<'static> {
        let mut batch = MatchBatch::default();
        let mut intern = |text: Option<&str>| text.map_or(Span::NONE, |t| batch.intern(t));
        let (id, sample, account, region) = (
            intern(id),
            intern(Some(sample)),
            intern(account),
            intern(region),
        );
        MatchTexts {
            arena: Box::leak(batch.arena.into_boxed_str()),
            id,
            sample,
            account,
            region,
        }
    }

    pub fn has_id(&self) -> bool {
        !self.id.is_none()
    }

    pub fn has_account(&self) -> bool {
        !self.account.is_none()
    }

    pub fn has_region(&self) -> bool {
        !self.region.is_none()
    }

    pub fn id(&self) -> Option<&'a str> {
        self.has_id().then(|| span_text(self.arena, self.id))
    }

    pub fn sample(&self) -> &'a str {
        span_text(self.arena, self.sample)
    }

    pub fn account(&self) -> Option<&'a str> {
        self.has_account()
            .then(|| span_text(self.arena, self.account))
    }

    pub fn region(&self) -> Option<&'a str> {
        self.has_region()
            .then(|| span_text(self.arena, self.region))
    }

    /// Keeps these texts as evidence of `agg` while it has room
    /// ([`WindowAgg::add_sample`]).
    pub fn add_sample_to(&self, agg: &mut WindowAgg, limits: EvidenceLimits) {
        agg.add_sample(
            self.id(),
            self.sample(),
            self.account(),
            self.region(),
            limits,
        );
    }
}

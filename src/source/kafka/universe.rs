//! Every partition of the subscribed topics, whoever in the group reads it.
//!
//! A consumer is told only its own assignment. Stage 1 of a scale-out also
//! needs the rest: stage 2 must not let the input partitions heard first
//! close windows that a partition whose owner has not reported yet still
//! feeds ([`crate::engine::merge`]). So the source reads the subscribed
//! topics' metadata after every assignment and every [`REFRESH`] (topics
//! grow), and announces each partition it had not seen as
//! [`super::PartitionEvent::Exists`].
//!
//! # Contract
//!
//! * [`Universe::due`] says when to look: right away at first, after an
//!   assignment, every [`REFRESH`], and [`RETRY`] after a failed look.
//! * [`Subscription::matches`] decides which topics count: the listed
//!   names, or those the pattern matches (librdkafka's `^` convention).
//! * A partition is announced once; one that disappears (a deleted topic)
//!   is not withdrawn: stage 2 lets a silent input go after its idle
//!   timeout.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often the metadata is read again without an assignment.
pub const REFRESH: Duration = Duration::from_secs(30);

/// How soon a failed metadata read is tried again.
pub const RETRY: Duration = Duration::from_secs(5);

/// How long one metadata read may block the source thread.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the consumer subscribed to.
#[derive(Debug)]
pub enum Subscription {
    Topics(Vec<String>),
    Pattern(regex::Regex),
}

impl Subscription {
    /// `topics`, or the pattern (already `^`-anchored, as librdkafka wants).
    pub fn new(topics: &[String], pattern: Option<&str>) -> Result<Self> {
        match pattern {
            Some(pattern) => regex::Regex::new(pattern)
                .map(Subscription::Pattern)
                .map_err(|e| Error::Config(format!("kafka topic_pattern {pattern:?}: {e}"))),
            None => Ok(Subscription::Topics(topics.to_vec())),
        }
    }

    /// Whether `topic` is subscribed.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Subscription::Topics(topics) => topics.iter().any(|t| t == topic),
            Subscription::Pattern(pattern) => pattern.is_match(topic),
        }
    }

    /// The one topic to ask metadata for, when there is exactly one
    /// (otherwise ask for all and filter).
    pub fn single_topic(&self) -> Option<&str> {
        match self {
            Subscription::Topics(topics) if topics.len() == 1 => Some(&topics[0]),
            _ => None,
        }
    }
}

/// The partitions announced so far and when to look again.
#[derive(Debug)]
pub struct Universe {
    subscription: Subscription,
    seen: HashSet<(String, i32)>,
    next_look: Option<Instant>,
}

impl Universe {
    /// Nothing announced; the first look is due.
    pub fn new(subscription: Subscription) -> Self {
        Universe {
            subscription,
            seen: HashSet::new(),
            next_look: None,
        }
    }

    /// Whether a look is due at `now` (`assigned`: an assignment came).
    pub fn due(&self, now: Instant, assigned: bool) -> bool {
        assigned || self.next_look.is_none_or(|at| now >= at)
    }

    /// Takes the result of a look at `now`: the `(topic, partition count)`
    /// pairs read, or the error. Returns the subscribed partitions not
    /// announced before.
    pub fn update(
        &mut self,
        now: Instant,
        looked: Result<Vec<(String, i32)>>,
    ) -> Vec<(String, i32)> {
        let topics = match looked {
            Ok(topics) => topics,
            Err(error) => {
                tracing::warn!(%error, "kafka metadata read failed; will retry");
                self.next_look = Some(now + RETRY);
                return Vec::new();
            }
        };
        self.next_look = Some(now + REFRESH);
        let mut new = Vec::new();
        for (topic, count) in topics {
            if !self.subscription.matches(&topic) {
                continue;
            }
            for partition in 0..count {
                if self.seen.insert((topic.clone(), partition)) {
                    new.push((topic.clone(), partition));
                }
            }
        }
        new
    }

    /// The topic to ask about, when only one (see [`Subscription`]).
    pub fn single_topic(&self) -> Option<&str> {
        self.subscription.single_topic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(pairs: &[(&str, i32)]) -> Result<Vec<(String, i32)>> {
        Ok(pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect())
    }

    #[test]
    fn announces_each_subscribed_partition_once() {
        let mut universe = Universe::new(Subscription::Topics(vec!["ct".into()]));
        let now = Instant::now();
        assert!(universe.due(now, false), "the first look is due at once");
        let new = universe.update(now, topics(&[("ct", 2), ("other", 3)]));
        assert_eq!(new, vec![("ct".to_string(), 0), ("ct".to_string(), 1)]);
        assert!(!universe.due(now, false));
        assert!(universe.due(now, true), "an assignment makes a look due");
        assert!(universe.due(now + REFRESH, false));
        // The topic grew: only the new partition is announced.
        let new = universe.update(now, topics(&[("ct", 3)]));
        assert_eq!(new, vec![("ct".to_string(), 2)]);
    }

    #[test]
    fn a_pattern_selects_topics_and_a_failed_look_is_retried_soon() {
        let subscription = Subscription::new(&[], Some("^cloudtrail-.*")).unwrap();
        assert_eq!(subscription.single_topic(), None);
        let mut universe = Universe::new(subscription);
        let now = Instant::now();
        let new = universe.update(now, topics(&[("cloudtrail-a", 1), ("flows", 1)]));
        assert_eq!(new, vec![("cloudtrail-a".to_string(), 0)]);
        let failed = universe.update(now, Err(Error::Source("broker down".into())));
        assert!(failed.is_empty());
        assert!(!universe.due(now, false));
        assert!(universe.due(now + RETRY, false), "retried after RETRY");
        assert!(
            Subscription::new(&[], Some("^(")).is_err(),
            "a bad pattern is a config error"
        );
    }
}

//! When to try a failed delivery again, and what a target's answer means.
//!
//! The schedule has two phases. A quick phase of fully jittered exponential backoff (each delay
//! drawn from `0..=min(cap, base * 2^n)`) heals short outages within seconds without a herd of
//! retries. A long tail of fixed steps, each jittered by about ±10%, keeps trying for about a
//! day. After the last step the row is dead-lettered: kept, counted, and replayable by an
//! operator. A target's `Retry-After` is a minimum: the next attempt waits at least that long.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The delays between attempts of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in the quick, fully jittered phase.
    pub quick_attempts: u32,
    /// Ceiling of the first quick delay.
    pub base: Duration,
    /// No quick delay exceeds this.
    pub cap: Duration,
    /// The long tail's steps, in order; each is jittered by ±10%.
    pub tail: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            quick_attempts: 10,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(30),
            tail: vec![
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
        }
    }
}

impl RetryPolicy {
    /// Attempts in all before a row is dead-lettered: the first, then one per delay.
    pub fn max_attempts(&self) -> u32 {
        let tail = u32::try_from(self.tail.len()).unwrap_or(u32::MAX);
        self.quick_attempts.saturating_add(tail).saturating_add(1)
    }

    /// The wait after the `failures`-th failed attempt (1 for the first), or `None` if that was
    /// the last attempt. `retry_after`, the target's own request, is a minimum.
    pub fn delay(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        let index = failures.checked_sub(1)?;
        let drawn = if index < self.quick_attempts {
            let factor = 2u32.saturating_pow(index.min(31));
            let ceiling = self.base.saturating_mul(factor).min(self.cap);
            let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.random_range(0..=nanos))
        } else {
            let step = *self
                .tail
                .get(usize::try_from(index - self.quick_attempts).ok()?)?;
            step.mul_f64(rng.random_range(0.9..=1.1))
        };
        Some(retry_after.map_or(drawn, |minimum| drawn.max(minimum)))
    }
}

/// What a target's answer means for the row and the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 408, 425, 5xx, network errors, timeouts: try this row again later.
    Retry,
    /// 429: try again later, and hold every row of the bridge until then.
    Throttled,
    /// 410: the target is gone; the bridge stops until an operator resumes it.
    Gone,
    /// Any other answer (other 4xx, 3xx): this row will never succeed; dead-letter it.
    Permanent,
}

/// Classifies an HTTP status.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 => Verdict::Throttled,
        408 | 425 | 500..=599 => Verdict::Retry,
        410 => Verdict::Gone,
        _ => Verdict::Permanent,
    }
}

/// Reads a `Retry-After` value, either delay seconds or an HTTP date, as the wait from `now`.
/// A date in the past means no wait; an unreadable value is ignored.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// The quick phase stays under a doubling ceiling up to the cap, the tail follows its steps
    /// within ±10%, and after the last step there is none.
    #[test]
    fn delays_follow_the_two_phases_and_end() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(3);
        let mut quick = Vec::new();
        for failures in 1..=policy.quick_attempts {
            let delay = policy.delay(failures, None, &mut rng).expect("a delay");
            let ceiling =
                (Duration::from_millis(200) * 2u32.pow(failures - 1)).min(Duration::from_secs(30));
            assert!(
                delay <= ceiling,
                "quick delay {failures}: {delay:?} > {ceiling:?}"
            );
            quick.push(delay);
        }
        assert!(quick.windows(2).any(|w| w[0] != w[1]), "jittered");
        for (step, expected) in policy.tail.iter().enumerate() {
            let failures = policy.quick_attempts + 1 + u32::try_from(step).expect("small");
            let delay = policy
                .delay(failures, None, &mut rng)
                .expect("a tail delay");
            assert!(delay >= expected.mul_f64(0.9) && delay <= expected.mul_f64(1.1));
        }
        assert_eq!(policy.delay(policy.max_attempts(), None, &mut rng), None);
        assert_eq!(policy.max_attempts(), 17);
    }

    /// Played out in paused time: seventeen attempts, the quick ones within a minute of the
    /// first failure, the whole schedule spanning about a day (the tail's 27.6 h, ±10%).
    #[tokio::test(start_paused = true)]
    async fn the_schedule_spans_about_a_day() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(11);
        let start = tokio::time::Instant::now();
        let mut attempts = vec![start];
        let mut failures = 0;
        while let Some(delay) = policy.delay(failures + 1, None, &mut rng) {
            failures += 1;
            tokio::time::sleep(delay).await;
            attempts.push(tokio::time::Instant::now());
        }

        assert_eq!(attempts.len(), 17);
        let quick_phase = attempts[10] - start;
        assert!(
            quick_phase <= Duration::from_secs(100),
            "quick phase took {quick_phase:?}"
        );
        let span = attempts[16] - start;
        let tail = Duration::from_secs(1655 * 60);
        assert!(
            span >= tail.mul_f64(0.9) && span <= tail.mul_f64(1.1) + quick_phase,
            "{span:?}"
        );
    }

    /// `Retry-After` is a minimum, never shortened by jitter.
    #[test]
    fn retry_after_is_a_minimum() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(5);
        let wait = Duration::from_secs(7);
        for failures in 1..=5 {
            assert!(policy.delay(failures, Some(wait), &mut rng).expect("delay") >= wait);
        }
    }

    /// Both forms of `Retry-After` are read; garbage is ignored.
    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(" 12 ", now), Some(Duration::from_secs(12)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(204), Verdict::Delivered);
        assert_eq!(classify(429), Verdict::Throttled);
        assert_eq!(classify(503), Verdict::Retry);
        assert_eq!(classify(408), Verdict::Retry);
        assert_eq!(classify(410), Verdict::Gone);
        assert_eq!(classify(404), Verdict::Permanent);
        assert_eq!(classify(302), Verdict::Permanent);
    }
}

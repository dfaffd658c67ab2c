//! Reconnect delays: exponential backoff with full jitter and a cap.
//!
//! After the n-th failed attempt in a row the next delay is drawn uniformly from
//! `0..=min(cap, base * 2^n)`. Full jitter spreads the reconnects of many clients after a server
//! restart over the whole window instead of bunching them at its edge, and the cap keeps a
//! client that was offline for an hour retrying every half minute rather than every hour. A
//! successful connection resets the sequence, so the next drop starts again from `base`.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio_util::sync::CancellationToken;

/// The delays' shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
        }
    }
}

/// The state of one reconnecting connection.
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
    rng: StdRng,
}

impl Backoff {
    /// A fresh sequence drawing its jitter from `rng`.
    pub fn new(config: BackoffConfig, rng: StdRng) -> Self {
        Self {
            config,
            failures: 0,
            rng,
        }
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(31));
        self.config.base.saturating_mul(factor).min(self.config.cap)
    }

    /// The delay before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(0..=nanos))
    }

    /// Starts over after a successful connection.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How one connection attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The connection was established (and has since ended): the backoff starts over.
    Connected,
    /// The connection could not be established.
    Failed,
}

/// Runs `attempt` again and again until `shutdown` is cancelled, sleeping a backoff delay
/// between attempts. The delay after an attempt that connected is drawn from the base window
/// again, so a server restart costs a reconnecting client well under a second.
pub async fn reconnect_loop<F, Fut>(
    mut backoff: Backoff,
    shutdown: CancellationToken,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    while !shutdown.is_cancelled() {
        if attempt().await == Attempt::Connected {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn backoff() -> Backoff {
        let config = BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        Backoff::new(config, StdRng::seed_from_u64(7))
    }

    /// The ceiling doubles per failure until the cap, and a reset brings it back to the base.
    #[test]
    fn ceiling_doubles_up_to_the_cap_and_resets() {
        let mut backoff = backoff();
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let ceiling = backoff.ceiling();
                backoff.next_delay();
                u64::try_from(ceiling.as_millis()).expect("small")
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);

        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
    }

    /// Driven by the real reconnect loop under paused time: the gaps between attempts stay
    /// under a window that doubles per failure up to the cap, are jittered (not all equal to
    /// the window), and after a successful connection the next gap is back under the base.
    #[tokio::test(start_paused = true)]
    async fn reconnect_delays_grow_jitter_cap_and_reset() {
        use std::sync::{Arc, Mutex};
        use tokio::time::Instant;

        // 1. Attempts 0..=9 fail, attempt 10 connects, attempts 11..=14 fail; then stop.
        let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let shutdown = CancellationToken::new();
        let record = Arc::clone(&attempts);
        let stop = shutdown.clone();
        let attempt = move || {
            let mut seen = record.lock().expect("test lock");
            seen.push(Instant::now());
            let n = seen.len() - 1;
            if n == 14 {
                stop.cancel();
            }
            let outcome = if n == 10 {
                Attempt::Connected
            } else {
                Attempt::Failed
            };
            async move { outcome }
        };
        reconnect_loop(backoff(), shutdown, attempt).await;

        // 2. The gap before attempt n+1 was drawn from the window of the failures before it.
        let at = attempts.lock().expect("test lock").clone();
        assert_eq!(at.len(), 15);
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let window = |failures: u32| {
            Duration::from_millis(100 * 2u64.pow(failures)).min(Duration::from_secs(2))
        };
        for (n, gap) in gaps.iter().enumerate().take(10) {
            assert!(
                *gap <= window(n as u32),
                "gap {n} of {gap:?} exceeds its window"
            );
        }
        // 3. Capped: no gap ever exceeds two seconds, though the windows would reach 51 s.
        assert!(gaps.iter().all(|gap| *gap <= Duration::from_secs(2)));
        // 4. Jittered: the capped gaps (windows all 2 s) are not all the same.
        let capped = &gaps[5..10];
        assert!(
            capped.windows(2).any(|w| w[0] != w[1]),
            "no jitter in {capped:?}"
        );
        // 5. Reset: the gap after the connected attempt 10 is under the base again, and the
        //    windows grow anew from there.
        assert!(
            gaps[10] <= Duration::from_millis(100),
            "no reset: {:?}",
            gaps[10]
        );
        assert!(gaps[11] <= Duration::from_millis(200));
        // 6. Growth: the later windows are used: the sum of the capped gaps is far above what
        //    five base windows could give.
        let sum: Duration = capped.iter().sum();
        assert!(
            sum > Duration::from_millis(500),
            "delays did not grow: {capped:?}"
        );
    }

    /// Thousands of failures neither overflow nor exceed the cap.
    #[test]
    fn many_failures_stay_capped() {
        let mut backoff = backoff();
        for _ in 0..10_000 {
            assert!(backoff.next_delay() <= Duration::from_secs(2));
        }
    }
}

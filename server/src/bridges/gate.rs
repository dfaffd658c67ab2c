//! When a bridge may start its next request: after any 429 pause, and spaced by its rate limit.
//!
//! One gate per bridge, shared by all its delivery chains, so a 429 on one document holds the
//! requests of every document, and the rate limit counts them all. Time is tokio's, so the
//! behaviour is tested with paused time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A bridge's pause and rate limit.
#[derive(Debug)]
pub struct Gate {
    paused_until: Mutex<Instant>,
    next_slot: Mutex<Instant>,
    /// Time between request starts; zero without a rate limit.
    spacing: Duration,
}

impl Gate {
    /// An open gate; `rate_per_second` limits request starts if set.
    pub fn new(rate_per_second: Option<f64>) -> Self {
        let spacing =
            rate_per_second.map_or(Duration::ZERO, |rate| Duration::from_secs_f64(1.0 / rate));
        Self {
            paused_until: Mutex::new(Instant::now()),
            next_slot: Mutex::new(Instant::now()),
            spacing,
        }
    }

    /// Holds every request until at least `until` (a later pause wins over an earlier one).
    pub fn pause_until(&self, until: Instant) {
        let mut paused = lock(&self.paused_until);
        *paused = (*paused).max(until);
    }

    /// How long to wait before the bridge is open, or `None` if it is open now.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = *lock(&self.paused_until);
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Takes the next request slot and returns how long to wait for it.
    pub fn take_slot(&self) -> Duration {
        if self.spacing.is_zero() {
            return Duration::ZERO;
        }
        let mut next = lock(&self.next_slot);
        let now = Instant::now();
        let slot = (*next).max(now);
        *next = slot + self.spacing;
        slot - now
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("gate lock holders do not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pause holds the gate until its end; a shorter pause that comes later does not cut it.
    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_until_its_end() {
        let gate = Gate::new(None);
        assert_eq!(gate.paused_for(), None);

        gate.pause_until(Instant::now() + Duration::from_secs(5));
        gate.pause_until(Instant::now() + Duration::from_secs(1));
        assert_eq!(gate.paused_for(), Some(Duration::from_secs(5)));

        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(gate.paused_for(), Some(Duration::from_secs(2)));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(gate.paused_for(), None);
    }

    /// With a rate of 4 per second, slots taken at once are 250 ms apart, and an idle gate
    /// gives the next slot at once.
    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate() {
        let gate = Gate::new(Some(4.0));
        let waits: Vec<u64> = (0..4)
            .map(|_| u64::try_from(gate.take_slot().as_millis()).expect("small"))
            .collect();
        assert_eq!(waits, [0, 250, 500, 750]);

        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(gate.take_slot(), Duration::ZERO);
        assert_eq!(Gate::new(None).take_slot(), Duration::ZERO);
    }
}

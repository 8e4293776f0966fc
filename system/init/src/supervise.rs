//! Restart policy for the supervised daemon: exponential backoff, reset after a good run.

use std::time::Duration;

/// A run at least this long counts as healthy: the next failure restarts at the minimum delay.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(10));
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before restarting a daemon that ran for `ran`, and advances the policy.
    pub fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.next = self.min;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_healthy_run() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let short = Duration::from_secs(1);
        let delays: Vec<u128> = (0..5).map(|_| b.after_exit(short).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(b.after_exit(HEALTHY_RUN).as_millis(), 500);
        assert_eq!(b.after_exit(short).as_millis(), 1000);
    }
}

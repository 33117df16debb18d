//! One retry helper: run an operation up to `attempts` times with doubling waits in between.
//!
//! Contract: `f` gets the attempt number (1-based) and returns `Ok` to stop or `Err` to try again;
//! the last error is returned once the attempts are used up. Callers decide what is retryable by
//! what they return as `Err` (a definite answer, such as "fenced", goes in `Ok`).

use std::future::Future;
use std::time::Duration;

/// How often and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        self.first.saturating_mul(1u32 << (n - 1).min(16)).min(self.max)
    }
}

/// Store writes on the checkpoint path: ~6 s in all.
pub const STORE: Backoff = Backoff { attempts: 5, first: Duration::from_millis(200), max: Duration::from_secs(3) };

/// Sink commits after a decision: ~1 min in all, then the stream stops (recovery finishes it).
pub const COMMIT: Backoff = Backoff { attempts: 8, first: Duration::from_millis(250), max: Duration::from_secs(15) };

pub async fn retry_async<T, E, F, Fut>(b: Backoff, mut f: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut n = 1;
    loop {
        match f(n).await {
            Ok(v) => return Ok(v),
            Err(e) if n >= b.attempts => return Err(e),
            Err(_) => tokio::time::sleep(b.delay(n)).await,
        }
        n += 1;
    }
}

/// The same for blocking code; `stop` cuts the waits short (and returns the last error).
pub fn retry_blocking<T, E>(b: Backoff, stop: &dyn Fn() -> bool, mut f: impl FnMut(u32) -> Result<T, E>) -> Result<T, E> {
    let mut n = 1;
    loop {
        let e = match f(n) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if n >= b.attempts {
            return Err(e);
        }
        let until = std::time::Instant::now() + b.delay(n);
        while std::time::Instant::now() < until {
            if stop() {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(std::time::Instant::now())));
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_success_or_after_the_attempts() {
        let b = Backoff { attempts: 3, first: Duration::from_millis(1), max: Duration::from_millis(2) };
        let mut calls = 0;
        let r: Result<u32, String> = retry_blocking(b, &|| false, |n| {
            calls += 1;
            if n == 2 {
                Ok(n)
            } else {
                Err(format!("e{n}"))
            }
        });
        assert_eq!((r, calls), (Ok(2), 2));
        let r: Result<(), String> = retry_blocking(b, &|| false, |n| Err(format!("e{n}")));
        assert_eq!(r, Err("e3".into()));
        assert_eq!(b.delay(1), Duration::from_millis(1));
        assert_eq!(b.delay(5), Duration::from_millis(2));
    }
}

//! The one wait of smoke: state behind a mutex whose changes wake every waiter through a condvar.
//!
//! Waiters sleep until a change is announced or their deadline passes, never in slices: a wait
//! that ends before its deadline was woken by a change, which is what the tests rely on.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub(crate) struct Watch<T> {
    state: Mutex<T>,
    cond: Condvar,
}

impl<T> Watch<T> {
    pub(crate) fn new(state: T) -> Watch<T> {
        Watch {
            state: Mutex::new(state),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes every waiter. The wake happens under the lock, so no waiter can
    /// check its condition between the change and the wake and then sleep through it.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock();
        let out = change(&mut guard);
        self.cond.notify_all();
        out
    }

    /// Wakes every waiter of a guard the caller already holds (after changing through it).
    pub(crate) fn announce(&self, _held: &MutexGuard<'_, T>) {
        self.cond.notify_all();
    }

    /// Sleeps until a change is announced or `deadline` passes; gives the guard back.
    pub(crate) fn wait<'a>(&'a self, guard: MutexGuard<'a, T>, deadline: Instant) -> MutexGuard<'a, T> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return guard;
        }
        self.cond.wait_timeout(guard, left).unwrap_or_else(|e| e.into_inner()).0
    }

    /// Waits until `ready` gives an answer, or `deadline` passes (`None`).
    pub(crate) fn wait_until<R>(&self, deadline: Instant, mut ready: impl FnMut(&mut T) -> Option<R>) -> Option<R> {
        let mut guard = self.lock();
        loop {
            if let Some(answer) = ready(&mut guard) {
                return Some(answer);
            }
            if Instant::now() >= deadline {
                return None;
            }
            guard = self.wait(guard, deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_waiter_wakes_on_the_change_long_before_its_deadline() {
        let watch = Arc::new(Watch::new(0u32));
        let w2 = watch.clone();
        let changer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w2.update(|n| *n = 7);
        });
        let started = Instant::now();
        let got = watch.wait_until(started + Duration::from_secs(20), |n| (*n == 7).then_some(*n));
        assert_eq!(got, Some(7));
        // Without the wake in `update` this wait would run to its 20 s deadline.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        changer.join().unwrap();
    }

    #[test]
    fn a_wait_with_nothing_new_ends_at_its_deadline() {
        let watch = Watch::new(0u32);
        let started = Instant::now();
        assert_eq!(
            watch.wait_until(started + Duration::from_millis(80), |_| None::<()>),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(80));
    }
}

//! Small helpers around `std::sync`.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even when a thread panicked while holding it: the gateway's
/// locks guard maps and counters that every critical section leaves consistent, and a panic
/// in one session (caught at its task's edge) must not take every later caller down with a
/// poisoned lock.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

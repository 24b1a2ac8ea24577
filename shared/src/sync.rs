//! Lock helpers for the in-process state of fakes and the local stack.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`; a panic while holding the lock leaves plain data behind, so keep serving it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

//! [`Lazy`]: an SDK client built on first use.

/// An SDK client built on first use, or given ready-made.
///
/// Constructing a client is not free: each service crate parses its endpoint
/// rules' partition table (JSON, plus a regex per partition) the first time one
/// of its clients is built. A function that holds a DynamoDB, an SQS and a
/// Management API client but whose invocation uses one of them pays only for
/// that one, and at the first request rather than during init.
pub struct Lazy<C>(std::sync::Arc<LazyInner<C>>);

struct LazyInner<C> {
    client: std::sync::OnceLock<C>,
    make: Box<dyn Fn() -> C + Send + Sync>,
}

impl<C> Lazy<C> {
    pub fn new(make: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Lazy(std::sync::Arc::new(LazyInner {
            client: std::sync::OnceLock::new(),
            make: Box::new(make),
        }))
    }
}

impl<C> Lazy<C> {
    /// Whether the client has been built (or was given ready-made).
    pub fn is_built(&self) -> bool {
        self.0.client.get().is_some()
    }
}

impl<C: Clone + Send + Sync + 'static> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Lazy(std::sync::Arc::new(LazyInner {
            client: std::sync::OnceLock::from(client.clone()),
            make: Box::new(move || client.clone()),
        }))
    }
}

impl<C> std::ops::Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        let inner = &*self.0;
        inner.client.get_or_init(|| (inner.make)())
    }
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Lazy(self.0.clone())
    }
}

impl<C> std::fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.client.get().is_some() {
            "built"
        } else {
            "not built yet"
        };
        write!(f, "Lazy({state})")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Lazy;

    #[test]
    fn a_lazy_client_is_built_once_on_first_use_and_shared_by_clones() {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let lazy = Lazy::new(move || counter.fetch_add(1, Ordering::SeqCst) + 100);
        let clone = lazy.clone();
        assert_eq!(built.load(Ordering::SeqCst), 0);
        assert_eq!(format!("{lazy:?}"), "Lazy(not built yet)");
        assert_eq!(*clone, 100);
        assert_eq!(*lazy, 100);
        assert_eq!(built.load(Ordering::SeqCst), 1);
        assert_eq!(format!("{lazy:?}"), "Lazy(built)");
        let ready: Lazy<String> = "ready".to_owned().into();
        assert_eq!(format!("{ready:?}"), "Lazy(built)");
        assert_eq!(&*ready, "ready");
    }
}

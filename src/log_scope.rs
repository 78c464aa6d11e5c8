//! Scoped `tracing` dispatch: the C and Python entry points route the library's events to
//! their own `tracing-subscriber` layer **without** installing a process-global subscriber,
//! so a host that uses `tracing` itself keeps its global default.
//!
//! [`scoped`] runs a closure with a dispatcher as the calling thread's default; every thread
//! the library starts inside it (node engine threads, transport threads) inherits that
//! dispatcher for its whole life (see [`inherit`]). Outside such a scope nothing changes:
//! a node started from Rust logs to whatever the host installed.

use std::cell::RefCell;
use std::sync::OnceLock;
use tracing::subscriber::NoSubscriber;
use tracing::{Dispatch, Subscriber};

thread_local! {
    /// The dispatcher set by [`scoped`] on this thread, for threads started from it.
    static SCOPE: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
}

/// Creates the dispatcher of a binding's subscriber (the C or Python layer), to be entered
/// with [`scoped`].
///
/// While exactly one `Dispatch` exists in the process, `tracing-core` resolves callsite
/// interest and the global max level through the *calling thread's* default dispatcher
/// instead of the registered ones (tokio-rs/tracing#2874). A binding's dispatcher is
/// usually the only one (no host subscriber) and is the default only inside its scopes,
/// so an interest rebuild from any other thread (`enable_logging` in Python,
/// `tracing_subscriber::reload`, a callsite first hit on a host thread) would see no
/// subscriber and switch every event off for good. A second, permanently registered
/// dispatcher that enables nothing makes `tracing-core` consult all registered
/// dispatchers, so the scoped layer's interest is always counted.
pub fn dispatch<S: Subscriber + Send + Sync + 'static>(subscriber: S) -> Dispatch {
    static KEEP_REGISTRY: OnceLock<Dispatch> = OnceLock::new();
    KEEP_REGISTRY.get_or_init(|| Dispatch::new(NoSubscriber::new()));
    Dispatch::new(subscriber)
}

/// Runs `f` with `dispatch` as this thread's default `tracing` dispatcher. Threads the
/// library starts inside `f` keep `dispatch` as their default until they end. The global
/// default is neither read nor replaced.
pub fn scoped<R>(dispatch: &Dispatch, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Dispatch>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = SCOPE.with(|s| s.borrow_mut().replace(dispatch.clone()));
    let _restore = Restore(prev);
    tracing::dispatcher::with_default(dispatch, f)
}

/// The dispatcher of the enclosing [`scoped`] call on this thread, if any.
pub fn current() -> Option<Dispatch> {
    SCOPE.with(|s| s.borrow().clone())
}

/// Wraps a thread body so it runs under the spawning thread's [`scoped`] dispatcher (when
/// there is one). Every `std::thread` the library spawns goes through this; a host or
/// binding can use it for its own threads too.
pub fn inherit<R>(f: impl FnOnce() -> R + Send + 'static) -> impl FnOnce() -> R + Send
where
    R: Send + 'static,
{
    let scope = current();
    move || match scope {
        Some(d) => scoped(&d, f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn threads_started_in_a_scope_inherit_it_and_others_do_not() {
        let n = Arc::new(AtomicUsize::new(0));
        let d = Dispatch::new(tracing_subscriber::registry().with(Count(n.clone())));
        scoped(&d, || {
            tracing::info!("in scope");
            std::thread::spawn(inherit(|| tracing::info!("inherited")))
                .join()
                .unwrap();
            // A thread spawned without `inherit` does not see the scope.
            std::thread::spawn(|| tracing::info!("plain"))
                .join()
                .unwrap();
        });
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert!(current().is_none());
        tracing::info!("after the scope");
        std::thread::spawn(inherit(|| tracing::info!("no scope to inherit")))
            .join()
            .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }
}

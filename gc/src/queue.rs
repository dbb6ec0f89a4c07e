//! The shared grey queue: crossbeam-deque's injector, or under loom (which cannot see inside
//! crossbeam) a mutex around a `VecDeque` with the same interface, so the mark loop that the
//! loom models run is the production one.

#[cfg(not(loom))]
pub(crate) use crossbeam_deque::{Injector, Steal};

#[cfg(loom)]
pub(crate) use loom_deque::{Injector, Steal};

#[cfg(loom)]
mod loom_deque {
    use std::collections::VecDeque;

    use minigo_alloc_core::sync::Mutex;

    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        #[allow(dead_code)]
        Retry,
    }

    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, t: T) {
            self.0.lock().push_back(t);
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            self.0
                .lock()
                .pop_front()
                .map_or(Steal::Empty, Steal::Success)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
    }
}

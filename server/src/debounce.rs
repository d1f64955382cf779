//! Coalescing bursts of work per key (saves per file): a kick starts the work once the
//! key has been quiet for `quiet` (or `max_wait` after the first kick at the latest);
//! kicks that arrive while it runs make it run once more afterwards, not once each.
//! Twenty saves in a second are one compile and one swap.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

type Slots = Arc<Mutex<HashMap<PathBuf, mpsc::UnboundedSender<()>>>>;

pub struct Debouncer {
    quiet: Duration,
    max_wait: Duration,
    slots: Slots,
}

impl Debouncer {
    pub fn new(quiet: Duration, max_wait: Duration) -> Self {
        Self {
            quiet,
            max_wait,
            slots: Default::default(),
        }
    }

    /// Ask for `run(key)`; coalesced with the other kicks of `key`.
    pub fn kick<F, Fut>(&self, key: PathBuf, run: F)
    where
        F: Fn(PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        if let Some(tx) = slots.get(&key) {
            if tx.send(()).is_ok() {
                return;
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        slots.insert(key.clone(), tx);
        let (quiet, max_wait, slots) = (self.quiet, self.max_wait, self.slots.clone());
        tokio::spawn(async move {
            loop {
                // Wait for a quiet moment (bounded, so steady kicks still get served).
                let deadline = tokio::time::Instant::now() + max_wait;
                while let Ok(Some(())) = tokio::time::timeout_at(
                    deadline.min(tokio::time::Instant::now() + quiet),
                    rx.recv(),
                )
                .await
                {}
                run(key.clone()).await;
                // Kicks while it ran: once more. None: this worker ends (under the lock,
                // so a new kick either reaches us or starts a new worker).
                let Ok(mut s) = slots.lock() else { return };
                let mut again = false;
                while rx.try_recv().is_ok() {
                    again = true;
                }
                if !again {
                    s.remove(&key);
                    return;
                }
            }
        });
    }

    /// Whether work for `key` is pending or running.
    pub fn busy(&self, key: &PathBuf) -> bool {
        self.slots.lock().is_ok_and(|s| s.contains_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_burst_runs_once() {
        let d = Debouncer::new(Duration::from_millis(50), Duration::from_secs(2));
        let runs = Arc::new(AtomicUsize::new(0));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let key = PathBuf::from("/a.ex");
        for _ in 0..20 {
            let (runs, done_tx) = (runs.clone(), done_tx.clone());
            d.kick(key.clone(), move |_| {
                let (runs, done_tx) = (runs.clone(), done_tx.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = done_tx.send(());
                }
            });
        }
        drop(done_tx);
        tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
            .await
            .unwrap();
        // The worker is gone once nothing is pending: it ran exactly once.
        while d.busy(&key) {
            tokio::task::yield_now().await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}

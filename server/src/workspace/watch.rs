//! Watch the workspace for sources (`.ex`, `.erl`, `.hrl`) changed outside the editor (a `git checkout`, a
//! generator), debounced, and report each changed path once per burst.

use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a burst of changes may last before we act.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// An editor's own file beside a source, never code: Emacs's lock (`.#a.ex`, a dangling
/// symlink) and auto-save (`#a.ex#`) files, other hidden files.
fn editor_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('#'))
}

fn interesting(p: &Path) -> bool {
    super::erlang::swappable(p)
        && !editor_file(p)
        && !p.components().any(|c| {
            matches!(
                c.as_os_str().to_str(),
                Some("_build" | "deps" | ".git" | "node_modules" | ".elixir_ls" | ".orrery")
            )
        })
}

/// Start watching `root`; batches of changed sources arrive on the returned channel.
/// The watcher lives as long as the returned handle.
pub fn watch(
    root: &Path,
) -> notify::Result<(
    notify::RecommendedWatcher,
    mpsc::UnboundedReceiver<Vec<PathBuf>>,
)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if matches!(
                ev.kind,
                notify::EventKind::Create(_) | notify::EventKind::Modify(_)
            ) {
                for p in ev.paths {
                    if interesting(&p) {
                        let _ = raw_tx.send(p);
                    }
                }
            }
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let mut batch = BTreeSet::from([first]);
            // Collect the rest of the burst.
            while let Ok(Some(p)) = tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                batch.insert(p);
            }
            if tx.send(batch.into_iter().collect()).is_err() {
                return;
            }
        }
    });
    Ok((watcher, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_source_files_outside_build_dirs() {
        assert!(interesting(Path::new("/p/lib/a.ex")));
        assert!(interesting(Path::new("/p/apps/s/src/a.erl")));
        assert!(interesting(Path::new("/p/apps/s/include/a.hrl")));
        assert!(!interesting(Path::new("/p/_build/dev/lib/s/include/a.hrl")));
        assert!(!interesting(Path::new("/p/_build/dev/lib/a.ex")));
        assert!(!interesting(Path::new("/p/deps/x/lib/a.ex")));
        assert!(!interesting(Path::new("/p/lib/.#a.ex")));
        assert!(!interesting(Path::new("/p/lib/#a.ex#")));
        assert!(!interesting(Path::new("/p/lib/a.exs")));
        assert!(!interesting(Path::new("/p/lib/a.beam")));
    }

    #[tokio::test]
    async fn a_burst_of_writes_arrives_once() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        let (_w, mut rx) = watch(dir.path()).unwrap();
        for i in 0..5 {
            std::fs::write(lib.join("a.ex"), format!("# {i}")).unwrap();
        }
        std::fs::write(lib.join("b.ex"), "# b").unwrap();
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let names: Vec<_> = batch
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.ex", "b.ex"]);
    }
}

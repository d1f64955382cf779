//! One winner per save: after Orrery compiled a saved file, mix's own compile (run on the
//! compile node) brings `_build` up to the sources on disk (beams, manifest, app file),
//! and the node gets the same code `_build` then holds. Saves of protocols and impls are
//! the exception: their consolidation is Orrery's on the node (`core::protocols`) and
//! mix's next compile rebuilds them on disk.
//! So mix, Phoenix's CodeReloader and IEx's `recompile` find nothing left to do, a
//! restarted node runs the same code, and no second load races Orrery's.
//!
//! Architecture Invariant: `_build` only ever gets what mix builds from the source on disk
//! (mix writes it; Orrery only puts back a beam mix missed by its one-second file times,
//! compiled from the same source). Instrumented code never reaches disk.

use super::compile_node::code_paths;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What bringing the build up to date did.
#[derive(Debug, Clone, PartialEq)]
pub enum Synced {
    /// `_build` matches the sources; `changed` are the modules (atom names) whose beams
    /// mix rewrote.
    Done {
        changed: Vec<String>,
    },
    /// Not run (a save of protocols or impls: mix rebuilds those at its next compile).
    /// mix compile failed or timed out: `_build` is as mix left it (mix rebuilds it later).
    Failed(String),
    Skipped,
}

impl Synced {
    /// A note for the save's message when the build could not be brought up to date.
    pub fn note(&self) -> Option<String> {
        match self {
            Synced::Done { .. } | Synced::Skipped => None,
            Synced::Failed(why) => Some(format!(
                "_build not updated ({why}); mix compile (or Phoenix's code reloader) will compile this file again"
            )),
        }
    }
}

/// The `ebin` directories of the workspace's own apps in `_build/<env>/lib` (and its path
/// dependencies): every lib but the dependencies fetched into `deps/`, which mix compile
/// with `--no-deps-check` does not touch.
pub fn workspace_ebins(root: &Path) -> Vec<PathBuf> {
    let deps = root.join("deps");
    code_paths(root)
        .into_iter()
        .filter(|ebin| {
            ebin.parent()
                .and_then(|lib| lib.file_name())
                .is_some_and(|app| !deps.join(app).is_dir())
        })
        .collect()
}

fn beams(ebin: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(ebin)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "beam"))
}

/// Modification times of the beams of the workspace's apps.
#[derive(Debug, Default)]
pub struct Snapshot(HashMap<PathBuf, SystemTime>);

impl Snapshot {
    pub fn take(root: &Path) -> Snapshot {
        Self::of(workspace_ebins(root))
    }

    fn of(dirs: Vec<PathBuf>) -> Snapshot {
        let mut times = HashMap::new();
        for ebin in dirs {
            for e in beams(&ebin) {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    times.insert(e.path(), t);
                }
            }
        }
        Snapshot(times)
    }

    /// Modules whose beam is new or rewritten since `before`.
    pub fn changed_since(&self, before: &Snapshot) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|(p, t)| before.0.get(*p) != Some(*t))
            .filter_map(|(p, _)| Some(p.file_stem()?.to_string_lossy().into_owned()))
            .collect();
        out.sort();
        out
    }
}

/// A private copy of the workspace's beams as the build had them before mix first
/// rewrote them for Orrery: the code a node runs when it loaded a module from there, which
/// a swap needs to put back if it fails (the build no longer has it).
#[derive(Debug)]
pub struct Mirror {
    dir: PathBuf,
    kept: HashSet<String>,
}

impl Mirror {
    pub fn new() -> Result<Mirror, String> {
        Ok(Mirror {
            dir: super::compile_node::private_dir("orrery-build")?,
            kept: HashSet::new(),
        })
    }

    /// Copy every beam not kept yet (a kept one is never replaced: it is the older code).
    pub fn update(&mut self, root: &Path) -> Result<(), String> {
        for ebin in workspace_ebins(root) {
            for e in beams(&ebin) {
                let name = e.file_name().to_string_lossy().into_owned();
                if self.kept.contains(&name) {
                    continue;
                }
                std::fs::copy(e.path(), self.dir.join(&name)).map_err(|err| {
                    format!("could not keep a copy of {}: {err}", e.path().display())
                })?;
                self.kept.insert(name);
            }
        }
        Ok(())
    }

    /// The kept beam of `module` (atom name).
    pub fn get(&self, module: &str) -> Option<Vec<u8>> {
        let name = format!("{module}.beam");
        self.kept
            .contains(&name)
            .then(|| std::fs::read(self.dir.join(name)).ok())
            .flatten()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `_build` holds the beam of `module` (atom name), if it does.
pub fn beam_path(root: &Path, module: &str) -> Option<PathBuf> {
    workspace_ebins(root)
        .into_iter()
        .map(|ebin| ebin.join(format!("{module}.beam")))
        .find(|p| p.is_file())
}

/// The beam `_build` holds for `module` (atom name), if any.
pub fn beam(root: &Path, module: &str) -> Option<Vec<u8>> {
    std::fs::read(beam_path(root, module)?).ok()
}

/// Write a beam as a whole (a temporary file renamed over it): a node loading it at the
/// same moment reads the old file or the new one, never half of one.
pub fn write_beam(target: &Path, bin: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.orrery-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bin)?;
    std::fs::rename(&tmp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The modules mix rewrote besides the saved file's (`modules`): dependents it
/// recompiled, files changed while no editor had them open. The node gets them too.
pub fn rebuilt_besides(
    root: &Path,
    modules: &[(String, Vec<u8>)],
    changed: &[String],
) -> Vec<(String, Vec<u8>)> {
    changed
        .iter()
        .filter(|m| !modules.iter().any(|(n, _)| n == *m))
        .filter_map(|m| Some((m.clone(), beam(root, m)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_or_new_beam_is_changed_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let ebin = dir.path().join("_build/dev/lib/app/ebin");
        std::fs::create_dir_all(&ebin).unwrap();
        std::fs::write(ebin.join("Elixir.A.beam"), b"a").unwrap();
        std::fs::write(ebin.join("Elixir.B.beam"), b"b").unwrap();
        std::fs::write(ebin.join("app.app"), b"{}").unwrap();
        let before = Snapshot::take(dir.path());
        assert_eq!(before.0.len(), 2);
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let f = std::fs::File::options()
            .write(true)
            .open(ebin.join("Elixir.B.beam"))
            .unwrap();
        f.set_modified(old).unwrap();
        std::fs::write(ebin.join("Elixir.C.beam"), b"c").unwrap();
        let after = Snapshot::take(dir.path());
        assert_eq!(after.changed_since(&before), vec!["Elixir.B", "Elixir.C"]);
        let mods = vec![("Elixir.A".to_string(), b"mine".to_vec())];
        let besides = rebuilt_besides(dir.path(), &mods, &after.changed_since(&before));
        let mut mirror = Mirror::new().unwrap();
        mirror.update(dir.path()).unwrap();
        std::fs::write(ebin.join("Elixir.A.beam"), b"a2").unwrap();
        mirror.update(dir.path()).unwrap();
        // The older code is kept.
        assert_eq!(mirror.get("Elixir.A"), Some(b"a".to_vec()));
        assert_eq!(mirror.get("Elixir.Z"), None);
        assert_eq!(
            besides,
            vec![
                ("Elixir.B".to_string(), b"b".to_vec()),
                ("Elixir.C".to_string(), b"c".to_vec()),
            ]
        );
    }
}

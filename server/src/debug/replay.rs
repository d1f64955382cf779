//! Replaying a saved recording without a node: one thread per recorded process, a cursor
//! that steps forward and back through its events, variables from the recorded bindings.

use super::history::load_recording;
use super::vars::{Var, VarStore};
use super::{Frame, Recorded};
use crate::beam::pretty;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A recording opened for replay.
pub struct Replay {
    threads: BTreeMap<i64, (String, Vec<Recorded>)>,
    cursor: Mutex<HashMap<i64, usize>>,
    vars: Mutex<VarStore>,
    paths: HashMap<String, PathBuf>,
}

impl Replay {
    /// Open `path`; source paths are resolved through the workspace at `root`.
    pub fn open(path: &Path, root: &Path) -> Result<Replay, String> {
        let events = load_recording(path)?;
        if events.is_empty() {
            return Err(format!("{} holds no events", path.display()));
        }
        let mut by_pid: BTreeMap<String, Vec<Recorded>> = BTreeMap::new();
        // Returns are in the timeline; stepping moves over lines.
        for (pid, e) in events.into_iter().filter(|(_, e)| e.is_line()) {
            by_pid.entry(pid).or_default().push(e);
        }
        let mut threads = BTreeMap::new();
        for (i, (pid, mut evs)) in by_pid.into_iter().enumerate() {
            evs.sort_by_key(|e| e.seq);
            threads.insert(i as i64 + 1, (pid, evs));
        }
        let mut index = crate::workspace::index::WorkspaceIndex::new();
        index.index_dir(root);
        let paths = index
            .modules()
            .map(|(p, m)| (crate::beam::term::module_atom(&m.name), p.to_path_buf()))
            .collect();
        Ok(Replay {
            threads,
            cursor: Mutex::new(HashMap::new()),
            vars: Mutex::new(VarStore::default()),
            paths,
        })
    }

    pub fn threads(&self) -> Vec<(i64, String)> {
        self.threads
            .iter()
            .map(|(id, (pid, evs))| (*id, format!("{pid} ({} events, recorded)", evs.len())))
            .collect()
    }

    fn at(&self, thread: i64) -> Option<(usize, &Recorded)> {
        let (_, evs) = self.threads.get(&thread)?;
        let i = *self.cursor.lock().ok()?.get(&thread).unwrap_or(&0);
        evs.get(i).map(|e| (i, e))
    }

    pub fn stack(&self, thread: i64) -> Vec<Frame> {
        match self.at(thread) {
            Some((_, e)) => vec![Frame {
                id: thread * 1000,
                name: format!(
                    "{}.{} (recorded #{})",
                    pretty::module_name(&e.module),
                    e.function,
                    e.seq
                ),
                path: self.paths.get(&e.module).cloned(),
                line: e.line,
            }],
            None => vec![],
        }
    }

    pub fn scopes(&self, frame: i64) -> Vec<(String, i64)> {
        let Some((_, e)) = self.at(frame / 1000) else {
            return vec![];
        };
        let mut v = self.vars.lock().unwrap_or_else(|e| e.into_inner());
        vec![("Locals".to_string(), v.add_named(e.bindings.clone()))]
    }

    pub fn variables(&self, reference: i64, start: usize, count: Option<usize>) -> Vec<Var> {
        self.vars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .children(reference, start, count)
    }

    /// Hover/watch of a variable of the current event (there is no node to evaluate on).
    pub fn evaluate(&self, expr: &str, frame: Option<i64>) -> Result<Var, String> {
        let (_, e) = frame.and_then(|f| self.at(f / 1000)).ok_or("no frame")?;
        let (n, v) = e
            .bindings
            .iter()
            .find(|(n, _)| n == expr.trim())
            .ok_or_else(|| {
                format!("a replay can only show variables of the frame; {expr} is not one")
            })?;
        Ok(self
            .vars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .var(n, v))
    }

    /// Move the cursor: `next`, `step_in`, `step_out`, `continue`, `back`, `reverse`.
    pub fn step(&self, thread: i64, cmd: &str) -> Result<(), String> {
        let (_, evs) = self.threads.get(&thread).ok_or("no such thread")?;
        let mut cursors = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let cur = *cursors.get(&thread).unwrap_or(&0);
        let depth = evs[cur].depth;
        let target = match cmd {
            "back" => cur.checked_sub(1),
            "reverse" => Some(0),
            "next" => (cur + 1..evs.len()).find(|&i| evs[i].depth <= depth),
            "step_out" => (cur + 1..evs.len()).find(|&i| evs[i].depth < depth),
            "continue" => Some(evs.len() - 1),
            _ => (cur + 1 < evs.len()).then_some(cur + 1),
        };
        let t = target.ok_or(if cmd == "back" {
            "at the start of the recording"
        } else {
            "at the end of the recording"
        })?;
        cursors.insert(thread, t);
        self.vars.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}

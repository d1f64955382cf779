//! Text for hovers, inlay hints and code lenses, from a snapshot. Markdown, no protocol.

use super::{ModuleOnNode, ProcOnNode, RegistryProcs, Snapshot, TableOnNode};

mod phoenix;

/// Longest inlay hint label.
pub const HINT_MAX: usize = 40;

fn human_bytes(n: i64) -> String {
    let n = n as f64;
    if n >= 1_048_576.0 {
        format!("{:.1} MB", n / 1_048_576.0)
    } else if n >= 1024.0 {
        format!("{:.1} KB", n / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// Cut `s` to at most `max` chars, ending with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn per_node_suffix(n: usize) -> String {
    if n > 1 {
        format!(" on {n} nodes")
    } else {
        String::new()
    }
}

/// Hover for a module: loaded/stale per node, process count, and a registered process's state.
pub fn module_hover(name: &str, snap: &Snapshot) -> Option<String> {
    let mods = snap.modules.get(name);
    let procs = snap.procs.get(name);
    let regs = snap.registries.get(name);
    if mods.is_none() && procs.is_none() && regs.is_none() {
        return None;
    }
    let mut out = format!("**{name}** — live\n\n");
    if let Some(mods) = mods {
        for m in mods {
            out.push_str(&module_line(m));
            out.push('\n');
        }
    }
    out.push_str(&phoenix::hover_blocks(name, &snap.phoenix));
    // An endpoint's process is its supervisor: the endpoint block says what matters.
    let endpoint = snap.phoenix.is_endpoint(name);
    if let Some(procs) = procs.filter(|_| !endpoint) {
        for p in procs {
            out.push_str(&proc_block(p.label.as_deref().unwrap_or(name), p));
        }
    }
    for r in regs.into_iter().flatten() {
        out.push_str(&registry_block(name, r));
    }
    Some(out)
}

fn module_line(m: &ModuleOnNode) -> String {
    if !m.loaded {
        return format!("- `{}`: not loaded", m.node);
    }
    let stale = match m.stale {
        Some(true) => " · **stale** (loaded code differs from `_build`: an edit swapped in and not yet built by mix, or a build the node has not loaded)",
        Some(false) => " · matches the last build",
        None => "",
    };
    let md5 = m
        .md5
        .as_deref()
        .map(|h| &h[..h.len().min(8)])
        .unwrap_or("?");
    format!(
        "- `{}`: loaded (md5 {md5}){stale} · {} process{}",
        m.node,
        m.procs,
        if m.procs == 1 { "" } else { "es" }
    )
}

fn proc_block(name: &str, p: &ProcOnNode) -> String {
    if let Some(runs) = &p.runs {
        return format!(
            "\n`{name}` is the registered name of {} on `{}`, a `{runs}` process (not \
             `{name}` code) · queue {}\n",
            p.pid, p.node, p.queue
        );
    }
    let mut out = format!(
        "\n`{name}` is {} on `{}` · queue {} · memory {} · reductions {}\n\n",
        p.pid,
        p.node,
        p.queue,
        human_bytes(p.memory),
        p.reductions
    );
    match &p.state {
        Ok(s) => {
            out.push_str("```elixir\n");
            out.push_str(s);
            out.push_str("\n```\n");
        }
        Err(e) => {
            out.push_str(&format!("_{e}_\n"));
        }
    }
    out
}

fn registry_block(module: &str, r: &RegistryProcs) -> String {
    let plural = if r.count == 1 { "" } else { "es" };
    let mut out = if r.all {
        format!(
            "\n{} process{plural} under `{}` on `{}`",
            r.count, r.name, r.node
        )
    } else if r.runtime {
        if r.count == 0 {
            return String::new();
        }
        format!(
            "\n{} process{plural} of `{module}` on `{}` (names as found on the node)",
            r.count, r.node
        )
    } else {
        format!(
            "\n{} process{plural} of `{module}` under `{}` on `{}`",
            r.count, r.name, r.node
        )
    };
    if r.count > r.items.len() as i64 {
        out.push_str(&format!(" (first {} by key)", r.items.len()));
    }
    out.push_str("\n\n");
    for (key, p) in &r.items {
        let state = match &p.state {
            Ok(_) => format!("`{}`", p.state_compact),
            Err(_) => "_state not available_".to_string(),
        };
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("`{key}` → ")
        };
        let runs = p
            .runs
            .as_deref()
            .map(|m| format!(" (`{m}`)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "- {key}{}{runs} · queue {} · {state}\n",
            p.pid, p.queue
        ));
    }
    out
}

/// Hover for an ETS table.
pub fn table_hover(name: &str, tables: &[TableOnNode]) -> String {
    let mut out = format!("**ETS {name}** — live\n\n");
    for t in tables {
        out.push_str(&format!(
            "`{}`: {} · {} rows · {} · owner {}\n\n```elixir\n{}\n```\n",
            t.node,
            t.kind,
            t.size,
            human_bytes(t.memory),
            t.owner,
            t.rows
        ));
    }
    out
}

/// Calls of `module.fun/arity` summed over nodes, and how many nodes reported.
pub fn calls(snap: &Snapshot, module: &str, fun_arity: &str) -> Option<(i64, usize)> {
    let per = snap.calls.get(module)?.get(fun_arity)?;
    Some((per.iter().map(|(_, n)| n).sum(), per.len()))
}

/// When the counts of `module` started again after a load Orrery did not make (ms since
/// the epoch, the latest over nodes); `None`: they run since counting began (attach).
pub fn calls_since(snap: &Snapshot, module: &str) -> Option<i64> {
    snap.calls_since.get(module)?.iter().map(|(_, t)| *t).max()
}

/// `since attach`, or `since 14:03:05` (local time; a date when not today).
pub fn since_text(since: Option<i64>) -> String {
    match since {
        None => "since attach".to_string(),
        Some(ms) => format!("since {}", local_time(ms)),
    }
}

/// A time (ms since the epoch) as local `HH:MM:SS`, with the date when it is not today.
pub fn local_time(ms: i64) -> String {
    let parts = |secs: i64| -> Option<(i32, i32, i32, i32, i32, i32)> {
        let t = secs as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::localtime_r(&t, &mut tm) };
        (!r.is_null()).then_some((
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
        ))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match (parts(ms.div_euclid(1000)), parts(now)) {
        (Some((y, mo, d, h, mi, sec)), Some((ny, nmo, nd, ..))) => {
            if (y, mo, d) == (ny, nmo, nd) {
                format!("{h:02}:{mi:02}:{sec:02}")
            } else {
                format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}")
            }
        }
        _ => format!("{ms} ms"),
    }
}

/// Code lens title of a function's count: `12 calls`, `12 calls since 14:03:05`.
pub fn calls_lens(snap: &Snapshot, module: &str, fun_arity: &str) -> Option<String> {
    let (n, _) = calls(snap, module, fun_arity)?;
    let since = calls_since(snap, module)
        .map(|t| format!(" {}", since_text(Some(t))))
        .unwrap_or_default();
    Some(format!("{n} call{}{since}", if n == 1 { "" } else { "s" }))
}

/// Mean time per call of `module.fun/arity` in microseconds over every node, from the
/// calls timed (`liveCallTime`: calls of processes Orrery could flag).
pub fn mean_us(snap: &Snapshot, module: &str, fun_arity: &str) -> Option<f64> {
    let per = snap.times.get(module)?.get(fun_arity)?;
    let calls: i64 = per.iter().map(|(_, c, _)| c).sum();
    let us: i64 = per.iter().map(|(_, _, u)| u).sum();
    (calls > 0).then(|| us as f64 / calls as f64)
}

/// `3.4 µs`, `12 ms`, `1.2 s`.
pub fn human_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.1} s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// Hover lines for a function's call count (and mean time with `liveCallTime`).
pub fn function_hover(snap: &Snapshot, module: &str, fun_arity: &str) -> Option<String> {
    let (total, nodes) = calls(snap, module, fun_arity)?;
    let mean = mean_us(snap, module, fun_arity)
        .map(|m| format!(" · mean {} per call", human_us(m)))
        .unwrap_or_default();
    let since = calls_since(snap, module);
    let why = if since.is_some() {
        "\n\n_Counting started again then: the module was loaded by something other than \
         Orrery, and the calls before that load are not known._"
    } else {
        ""
    };
    Some(format!(
        "**{module}.{fun_arity}** — {total} call{} {}{}{mean}{why}",
        if total == 1 { "" } else { "s" },
        since_text(since),
        per_node_suffix(nodes)
    ))
}

/// Inlay hint after a `def` head.
pub fn function_hint(snap: &Snapshot, module: &str, fun_arity: &str) -> Option<String> {
    let (total, nodes) = calls(snap, module, fun_arity)?;
    let mean = mean_us(snap, module, fun_arity)
        .map(|m| format!(" · {}", human_us(m)))
        .unwrap_or_default();
    let since = calls_since(snap, module)
        .map(|t| format!(" {}", since_text(Some(t))))
        .unwrap_or_default();
    Some(clip(
        &format!(
            "{total} call{}{}{since}{mean}",
            if total == 1 { "" } else { "s" },
            per_node_suffix(nodes)
        ),
        HINT_MAX,
    ))
}

/// Inlay hint after `defmodule`/`use GenServer`: process count and a compact state.
pub fn module_hint(snap: &Snapshot, module: &str) -> Option<String> {
    if let Some(h) = phoenix::view_hint(&snap.phoenix, module) {
        return Some(clip(&h, HINT_MAX));
    }
    let mods = snap.modules.get(module)?;
    let procs: i64 = mods.iter().map(|m| m.procs).sum();
    let live_nodes = mods.iter().filter(|m| m.procs > 0).count();
    let state = snap
        .procs
        .get(module)
        .and_then(|p| p.iter().find(|p| p.is_own()))
        .map(|p| p.state_compact.clone())
        .filter(|s| !s.is_empty());
    if procs == 0 && state.is_none() {
        return None;
    }
    let mut s = format!(
        "{procs} proc{}{}",
        if procs == 1 { "" } else { "s" },
        per_node_suffix(live_nodes)
    );
    if let Some(st) = state {
        s.push_str(" · ");
        s.push_str(&st);
    }
    Some(clip(&s, HINT_MAX))
}

/// Inlay hint after `:ets.new(:name, ...)`.
pub fn table_hint(snap: &Snapshot, table: &str) -> Option<String> {
    let t = snap.tables.get(table)?;
    let rows: i64 = t.iter().map(|t| t.size).sum();
    let mem: i64 = t.iter().map(|t| t.memory).sum();
    Some(clip(
        &format!("{rows} rows · {}", human_bytes(mem)),
        HINT_MAX,
    ))
}

/// Code lens title above `defmodule`.
pub fn module_lens(snap: &Snapshot, module: &str) -> Option<String> {
    let mods = snap.modules.get(module)?;
    let procs: i64 = mods.iter().map(|m| m.procs).sum();
    if let Some(n) = snap.phoenix.view_count(module) {
        let loaded = mods.iter().any(|m| m.loaded);
        return Some(format!(
            "{n} connected view{} · {}",
            if n == 1 { "" } else { "s" },
            if loaded { "loaded" } else { "not loaded" }
        ));
    }
    let loaded = mods.iter().filter(|m| m.loaded).count();
    let md5 = mods
        .iter()
        .find_map(|m| m.md5.as_deref())
        .map(|h| h[..h.len().min(8)].to_string());
    let version = match (loaded, md5) {
        (0, _) => "not loaded".to_string(),
        (_, Some(h)) => format!("loaded {h}"),
        _ => "loaded".to_string(),
    };
    Some(format!(
        "{procs} live process{}{} · {version}",
        if procs == 1 { "" } else { "es" },
        per_node_suffix(mods.len())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_say_since_when_they_run() {
        let mut snap = Snapshot::default();
        snap.calls.insert(
            "KV.Calc".into(),
            [("add/2".to_string(), vec![("a@h".to_string(), 12)])].into(),
        );
        assert_eq!(calls_lens(&snap, "KV.Calc", "add/2").unwrap(), "12 calls");
        let h = function_hover(&snap, "KV.Calc", "add/2").unwrap();
        assert!(h.contains("12 calls since attach"), "{h}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        snap.calls_since
            .insert("KV.Calc".into(), vec![("a@h".into(), now)]);
        let t = local_time(now);
        assert_eq!(t.len(), 8, "{t}"); // today: HH:MM:SS
        let lens = calls_lens(&snap, "KV.Calc", "add/2").unwrap();
        assert_eq!(lens, format!("12 calls since {t}"));
        assert_eq!(function_hint(&snap, "KV.Calc", "add/2").unwrap(), lens);
        let h = function_hover(&snap, "KV.Calc", "add/2").unwrap();
        assert!(h.contains(&lens) && h.contains("not known"), "{h}");
        // Another day shows its date.
        assert!(local_time(now - 3 * 86_400_000).contains('-'));
    }

    #[test]
    fn hints_are_short() {
        let mut snap = Snapshot::default();
        snap.modules.insert(
            "KV.Bucket".into(),
            vec![ModuleOnNode {
                node: "a@h".into(),
                loaded: true,
                procs: 1,
                ..Default::default()
            }],
        );
        snap.procs.insert(
            "KV.Bucket".into(),
            vec![ProcOnNode {
                state_compact: "%{a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7}".into(),
                ..Default::default()
            }],
        );
        let h = module_hint(&snap, "KV.Bucket").unwrap();
        assert!(h.chars().count() <= HINT_MAX, "{h}");
        assert!(h.starts_with("1 proc · %{a: 1"), "{h}");
        assert!(h.ends_with('…'));
    }
}

//! The on-node agent: Erlang source embedded in the binary, compiled on the target at
//! attach (so it matches the node's OTP), and removed at detach together with any compiler
//! modules that compiling it made the node load, so the node ends as it was found.

use crate::beam::term::{self, atom, charlist, list};
use crate::beam::{BeamError, Connection};
use eetf::Term;
use std::collections::BTreeSet;
use std::time::Duration;

/// The agent's module name, versioned so two Orrery versions never clash.
pub const MODULE: &str = "orrery_agent_v1";
/// Its source.
pub const SOURCE: &str = include_str!("orrery_agent_v1.erl");
/// The debugger runtime, loaded with the agent (probes of instrumented code call it).
pub const DBG_MODULE: &str = "orrery_dbg_v1";
const DBG_SOURCE: &str = include_str!("orrery_dbg_v1.erl");
/// The call tracer (arguments and results of chosen functions, bounded).
pub const TRACE_MODULE: &str = "orrery_trace_v1";
const TRACE_SOURCE: &str = include_str!("orrery_trace_v1.erl");
/// Lookups of processes by `{:global, ..}` / `{:via, ..}` names.
pub const NAMES_MODULE: &str = "orrery_names_v1";
const NAMES_SOURCE: &str = include_str!("orrery_names_v1.erl");
/// Mean call times (`call_time`), opt-in: owns the `call` trace flags it sets.
pub const CALLTIME_MODULE: &str = "orrery_calltime_v1";
const CALLTIME_SOURCE: &str = include_str!("orrery_calltime_v1.erl");
/// The hot-swap runtime (two-phase loads with state migration and rollback).
pub const SWAP_MODULE: &str = "orrery_swap_v1";
const SWAP_SOURCE: &str = include_str!("orrery_swap_v1.erl");
/// Every module Orrery loads on a node, the agent last (it is removed last).
pub const OUR_MODULES: [&str; 6] = [
    SWAP_MODULE,
    NAMES_MODULE,
    CALLTIME_MODULE,
    TRACE_MODULE,
    DBG_MODULE,
    MODULE,
];

const STEP: Duration = Duration::from_secs(15);

/// What we changed on a node by loading the agent, so we can undo exactly that.
#[derive(Debug, Clone, Default)]
pub struct AgentHandle {
    /// Modules that were not loaded before and that we loaded (the agent, compiler modules).
    pub loaded_by_us: Vec<String>,
    /// True when the agent was already loaded by someone else (another Orrery): then we
    /// leave it in place at detach.
    pub shared: bool,
    /// Every module loaded before we attached.
    pub before: BTreeSet<String>,
}

async fn loaded_modules(conn: &Connection) -> Result<BTreeSet<String>, BeamError> {
    let t = conn.rpc("erlang", "loaded", vec![], STEP).await?;
    Ok(term::list_ref(&t)
        .iter()
        .filter_map(|m| term::as_atom(m).map(str::to_string))
        .collect())
}

/// Compile and load the agent on the node behind `conn`.
pub async fn load(conn: &Connection) -> Result<AgentHandle, BeamError> {
    let before = loaded_modules(conn).await?;
    if before.contains(MODULE) {
        return Ok(AgentHandle {
            loaded_by_us: vec![],
            shared: true,
            before,
        });
    }
    compile_and_load(conn, MODULE, SOURCE).await?;
    compile_and_load(conn, DBG_MODULE, DBG_SOURCE).await?;
    compile_and_load(conn, TRACE_MODULE, TRACE_SOURCE).await?;
    compile_and_load(conn, NAMES_MODULE, NAMES_SOURCE).await?;
    compile_and_load(conn, CALLTIME_MODULE, CALLTIME_SOURCE).await?;
    compile_and_load(conn, SWAP_MODULE, SWAP_SOURCE).await?;
    let after = loaded_modules(conn).await?;
    Ok(AgentHandle {
        loaded_by_us: after.difference(&before).cloned().collect(),
        shared: false,
        before,
    })
}

async fn compile_and_load(conn: &Connection, module: &str, source: &str) -> Result<(), BeamError> {
    let proto = |detail: String| BeamError::Protocol {
        node: conn.peer().to_string(),
        detail,
    };
    let scanned = conn
        .rpc("erl_scan", "string", vec![charlist(source)], STEP)
        .await?;
    let tokens = match term::as_tuple(&scanned) {
        Some([ok, tokens, _]) if term::is_atom(ok, "ok") => term::list_ref(tokens).to_vec(),
        _ => return Err(proto(format!("agent source did not scan: {scanned:?}"))),
    };
    // Split into forms at each `dot` token and parse each on the node.
    let mut forms = Vec::new();
    let mut cur = Vec::new();
    for tok in tokens {
        let is_dot = term::as_tuple(&tok)
            .and_then(|t| t.first())
            .is_some_and(|a| term::is_atom(a, "dot"));
        cur.push(tok);
        if is_dot {
            let parsed = conn
                .rpc(
                    "erl_parse",
                    "parse_form",
                    vec![list(std::mem::take(&mut cur))],
                    STEP,
                )
                .await?;
            match term::as_tuple(&parsed) {
                Some([ok, form]) if term::is_atom(ok, "ok") => forms.push(form.clone()),
                _ => return Err(proto(format!("agent source did not parse: {parsed:?}"))),
            }
        }
    }
    let compiled = conn
        .rpc(
            "compile",
            "forms",
            vec![
                list(forms),
                list(vec![atom("binary"), atom("return_errors")]),
            ],
            Duration::from_secs(60),
        )
        .await?;
    let binary = match term::as_tuple(&compiled) {
        Some([ok, _m, bin]) if term::is_atom(ok, "ok") => bin.clone(),
        _ => return Err(proto(format!("agent did not compile: {compiled:?}"))),
    };
    let loaded = conn
        .rpc(
            "code",
            "load_binary",
            vec![atom(module), charlist(&format!("{module}.erl")), binary],
            STEP,
        )
        .await?;
    if !matches!(term::as_tuple(&loaded), Some([ok, _]) if term::is_atom(ok, "module")) {
        return Err(proto(format!("agent did not load: {loaded:?}")));
    }
    Ok(())
}

/// Remove the agent and the OTP library modules (compiler, stdlib: `compile`, `erl_parse`,
/// `beam_lib`, ...) that loading it or its queries made the node load. Nothing else is
/// touched: a module some other code loaded meanwhile (say, by a starting app) stays.
pub async fn unload(conn: &Connection, handle: &AgentHandle) -> Result<(), BeamError> {
    // Stop the debugger first: it disarms and resumes every paused process.
    let _ = conn.rpc(DBG_MODULE, "stop", vec![], STEP).await;
    let _ = conn.rpc(TRACE_MODULE, "stop_all", vec![], STEP).await;
    let _ = conn.rpc(CALLTIME_MODULE, "stop", vec![], STEP).await;
    let now = loaded_modules(conn).await?;
    let mut libs = vec![];
    for app in ["compiler", "stdlib"] {
        let dir = conn.rpc("code", "lib_dir", vec![atom(app)], STEP).await?;
        if let Some(d) = term::as_string(&dir).filter(|d| d.starts_with('/')) {
            libs.push(format!("{d}/"));
        }
    }
    let mut ours = vec![];
    for m in now.difference(&handle.before) {
        // Only what our own load step pulled in, beam_lib (staleness) and sys (state reads).
        if OUR_MODULES.contains(&m.as_str())
            || !(handle.loaded_by_us.contains(m) || matches!(m.as_str(), "beam_lib" | "sys"))
        {
            continue;
        }
        let which = conn.rpc("code", "which", vec![atom(m)], STEP).await?;
        if term::as_string(&which).is_some_and(|w| libs.iter().any(|l| w.starts_with(l))) {
            ours.push(m.clone());
        }
    }
    // The agent goes last: it may be running a call right now.
    if !handle.shared {
        for m in OUR_MODULES {
            if now.contains(m) {
                ours.push(m.to_string());
            }
        }
    }
    for m in &ours {
        conn.rpc("code", "delete", vec![atom(m)], STEP).await?;
        // Only our own calls can run the agent's code, so a hard purge is safe for it.
        let ours_only = OUR_MODULES.contains(&m.as_str());
        let purge = if ours_only { "purge" } else { "soft_purge" };
        let purged = conn.rpc("code", purge, vec![atom(m)], STEP).await?;
        if !ours_only && !term::is_atom(&purged, "true") {
            // Someone runs it after all: make it current again rather than leave it half-gone.
            let _ = conn.rpc("code", "load_file", vec![atom(m)], STEP).await;
            tracing::warn!(module = %m, "left a module loaded: a process is running it");
        }
    }
    Ok(())
}

/// Call one of the hot-swap runtime's functions (`swap/3`, `swap_finish/2`).
pub async fn call_swap(
    conn: &Connection,
    function: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Term, BeamError> {
    conn.rpc(SWAP_MODULE, function, args, timeout).await
}

/// Call a function of the agent.
pub async fn call(
    conn: &Connection,
    function: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Term, BeamError> {
    conn.rpc(MODULE, function, args, timeout).await
}

/// Limits for terms the agent sends back.
pub fn limits(depth: i64, items: i64, binary: i64, budget: i64) -> Term {
    term::map(vec![
        ("depth", term::int(depth)),
        ("items", term::int(items)),
        ("binary", term::int(binary)),
        ("budget", term::int(budget)),
    ])
}

/// `{ok, Value}` → Value; `{error, Reason}` → None.
pub fn ok_value(t: &Term) -> Option<&Term> {
    match term::as_tuple(t) {
        Some([ok, v]) if term::is_atom(ok, "ok") => Some(v),
        _ => None,
    }
}

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
/// Editor views: supervision trees, ETS tables, pages of processes.
pub const VIEWS_MODULE: &str = "orrery_views_v1";
const VIEWS_SOURCE: &str = include_str!("orrery_views_v1.erl");
/// Mean call times (`call_time`), opt-in: owns the `call` trace flags it sets.
pub const CALLTIME_MODULE: &str = "orrery_calltime_v1";
const CALLTIME_SOURCE: &str = include_str!("orrery_calltime_v1.erl");
/// Call counts kept across the loads Orrery makes (the base per function, who counts what).
pub const COUNTS_MODULE: &str = "orrery_counts_v1";
const COUNTS_SOURCE: &str = include_str!("orrery_counts_v1.erl");
/// The hot-swap runtime (two-phase loads with state migration and rollback).
pub const SWAP_MODULE: &str = "orrery_swap_v1";
const SWAP_SOURCE: &str = include_str!("orrery_swap_v1.erl");
/// Phoenix: connected LiveViews, a router's routes, an endpoint's URL and port.
pub const PHOENIX_MODULE: &str = "orrery_phoenix_v1";
const PHOENIX_SOURCE: &str = include_str!("orrery_phoenix_v1.erl");
/// The guard: undoes what an Orrery changed when it goes away (see the `.erl`).
pub const GUARD_MODULE: &str = "orrery_guard_v1";
const GUARD_SOURCE: &str = include_str!("orrery_guard_v1.erl");
/// Every module Orrery loads on a node (the guard removes them, itself last).
pub const OUR_MODULES: [&str; 11] = [
    PHOENIX_MODULE,
    SWAP_MODULE,
    COUNTS_MODULE,
    VIEWS_MODULE,
    NAMES_MODULE,
    CALLTIME_MODULE,
    TRACE_MODULE,
    "orrery_dbg_v1_armed",
    DBG_MODULE,
    MODULE,
    GUARD_MODULE,
];

/// How long the guard waits for an Orrery whose node went away to come back before it
/// undoes that Orrery's changes itself (`ORRERY_GRACE_MS` overrides it).
pub fn grace() -> Duration {
    std::env::var("ORRERY_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10))
}

/// Who attaches: a stable id per Orrery session, kept across reconnects, so the guard
/// knows a reconnect from a new Orrery.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: String,
}

impl Owner {
    pub fn new() -> Owner {
        Owner {
            id: format!(
                "orrery-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
        }
    }
}

impl Default for Owner {
    fn default() -> Self {
        Self::new()
    }
}

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
    /// Whom the guard knows us as.
    pub owner: Owner,
}

async fn loaded_modules(conn: &Connection) -> Result<BTreeSet<String>, BeamError> {
    let t = conn.rpc("erlang", "loaded", vec![], STEP).await?;
    Ok(term::list_ref(&t)
        .iter()
        .filter_map(|m| term::as_atom(m).map(str::to_string))
        .collect())
}

/// Compile and load the agent on the node behind `conn` (unless another Orrery, or this
/// one before a reconnect, already did), and register `owner` with the guard.
pub async fn load(conn: &Connection, owner: &Owner) -> Result<AgentHandle, BeamError> {
    match load_once(conn, owner).await {
        Ok(h) => Ok(h),
        Err(e) => {
            // The guard may have been on its way out (the last Orrery leaving removes it
            // and every agent module): once that is over, load afresh.
            if guard_settled(conn).await {
                load_once(conn, owner).await
            } else {
                // Agent modules and no guard: a load cut short (another Orrery's guard
                // cleaned up in the middle of it, this process's own load of a peer
                // failed). Nobody would ever remove them: leave the node as found.
                remove_orphans(conn).await;
                Err(e)
            }
        }
    }
}

/// Remove the agent modules loaded on a node where no guard runs (none owns them).
async fn remove_orphans(conn: &Connection) {
    let guarded = conn
        .rpc("erlang", "whereis", vec![atom(GUARD_MODULE)], STEP)
        .await
        .is_ok_and(|p| matches!(p, Term::Pid(_)));
    if guarded {
        return;
    }
    for m in OUR_MODULES {
        for f in ["purge", "delete", "purge"] {
            let _ = conn.rpc("code", f, vec![atom(m)], STEP).await;
        }
    }
    tracing::warn!(
        "removed agent modules that no guard owned from {}",
        conn.peer()
    );
}

/// Wait (up to 10 s) until the node has a running guard or no agent module at all.
async fn guard_settled(conn: &Connection) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let Ok(loaded) = loaded_modules(conn).await else {
            return false;
        };
        let running = conn
            .rpc("erlang", "whereis", vec![atom(GUARD_MODULE)], STEP)
            .await
            .is_ok_and(|p| matches!(p, Term::Pid(_)));
        let ours = loaded.iter().any(|m| m.starts_with("orrery_"));
        if running || !ours {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn load_once(conn: &Connection, owner: &Owner) -> Result<AgentHandle, BeamError> {
    let before = loaded_modules(conn).await?;
    let shared = before.contains(MODULE) && before.contains(GUARD_MODULE);
    let mut loaded_by_us = vec![];
    if !shared {
        compile_and_load(conn, GUARD_MODULE, GUARD_SOURCE).await?;
        compile_and_load(conn, MODULE, SOURCE).await?;
        compile_and_load(conn, DBG_MODULE, DBG_SOURCE).await?;
        compile_and_load(conn, TRACE_MODULE, TRACE_SOURCE).await?;
        compile_and_load(conn, NAMES_MODULE, NAMES_SOURCE).await?;
        compile_and_load(conn, VIEWS_MODULE, VIEWS_SOURCE).await?;
        compile_and_load(conn, CALLTIME_MODULE, CALLTIME_SOURCE).await?;
        compile_and_load(conn, COUNTS_MODULE, COUNTS_SOURCE).await?;
        compile_and_load(conn, SWAP_MODULE, SWAP_SOURCE).await?;
        compile_and_load(conn, PHOENIX_MODULE, PHOENIX_SOURCE).await?;
        let after = loaded_modules(conn).await?;
        loaded_by_us = after.difference(&before).cloned().collect();
    }
    let opts = term::map(vec![
        ("grace", term::int(grace().as_millis() as i64)),
        ("before", list(before.iter().map(|m| atom(m)).collect())),
        (
            "loaded_by_us",
            list(loaded_by_us.iter().map(|m| atom(m)).collect()),
        ),
    ]);
    let r = conn
        .rpc(
            GUARD_MODULE,
            "attach",
            vec![term::binary(&owner.id), atom(conn.local_name()), opts],
            STEP,
        )
        .await?;
    if !term::is_atom(&r, "ok") {
        return Err(BeamError::Protocol {
            node: conn.peer().to_string(),
            detail: format!("the agent's guard did not start: {r:?}"),
        });
    }
    Ok(AgentHandle {
        loaded_by_us,
        shared,
        before,
        owner: owner.clone(),
    })
}

/// Leave an undo step with the guard: if this Orrery goes away without detaching, the
/// guard runs `module:function(args)` after the grace period. `key` replaces an earlier
/// step of the same key.
pub async fn undo_on_loss(
    conn: &Connection,
    owner: &Owner,
    key: &str,
    mfa: (&str, &str, Vec<Term>),
) -> Result<(), BeamError> {
    let (m, f, a) = mfa;
    conn.rpc(
        GUARD_MODULE,
        "undo_on_loss",
        vec![
            term::binary(&owner.id),
            atom(key),
            eetf::Tuple::from(vec![atom(m), atom(f), list(a)]).into(),
        ],
        STEP,
    )
    .await
    .map(|_| ())
}

/// Take back an undo step (its change was undone the normal way).
pub async fn forget_undo(conn: &Connection, owner: &Owner, key: &str) -> Result<(), BeamError> {
    conn.rpc(
        GUARD_MODULE,
        "forget_undo",
        vec![term::binary(&owner.id), atom(key)],
        STEP,
    )
    .await
    .map(|_| ())
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

/// Detach `handle`'s owner from the node: the guard runs the undo steps this Orrery left,
/// and when no other Orrery is attached it restores instrumented modules and removes the
/// agent and the OTP library modules loading it pulled in (`compile`, `erl_parse`,
/// `beam_lib`, ...; nothing some other code loaded meanwhile). Waits until it is gone.
pub async fn unload(conn: &Connection, handle: &AgentHandle) -> Result<(), BeamError> {
    // gen_server:call, so the calling process never runs the guard's code as it goes.
    let r = conn
        .rpc(
            "gen_server",
            "call",
            vec![
                atom(GUARD_MODULE),
                eetf::Tuple::from(vec![atom("release"), term::binary(&handle.owner.id)]).into(),
                term::int(60_000),
            ],
            Duration::from_secs(65),
        )
        .await?;
    let last = term::as_tuple(&r)
        .and_then(|t| t.first())
        .is_some_and(|a| term::is_atom(a, "last"));
    if !last {
        return Ok(());
    }
    if let Some(left) = term::as_tuple(&r)
        .and_then(|t| t.get(1))
        .and_then(|i| term::get(i, "left"))
    {
        for m in term::list_ref(left) {
            tracing::warn!(module = ?m, "left a module loaded: a process is running it");
        }
    }
    // The guard removes itself last, just after answering.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if !loaded_modules(conn).await?.contains(GUARD_MODULE)
            || tokio::time::Instant::now() > deadline
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

/// Call a function of the views module.
pub async fn call_views(
    conn: &Connection,
    function: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Term, BeamError> {
    conn.rpc(VIEWS_MODULE, function, args, timeout).await
}

/// Call a function of the Phoenix module.
pub async fn call_phoenix(
    conn: &Connection,
    function: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Term, BeamError> {
    conn.rpc(PHOENIX_MODULE, function, args, timeout).await
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

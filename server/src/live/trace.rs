//! Call tracing of chosen functions ("Trace calls" in the editor): switched on per
//! function on every attached node; the last few calls with arguments and results come
//! back with each refresh. Bounded on the node (count and rate); past a bound it stops
//! itself and the hover says why. On nodes with trace sessions (OTP 27+) it traces in
//! Orrery's own session; elsewhere it shares the node's one tracer per process, and the
//! hover says what that means for the user's own tracers.

use crate::agent::TRACE_MODULE;
use crate::attach::Session;
use crate::beam::pretty;
use crate::beam::term::{self, atom, int, map};
use eetf::Term;
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// One traced call.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedCall {
    pub node: String,
    pub args: String,
    pub result: String,
    /// Wall time from call to return, in microseconds.
    pub us: i64,
}

/// What tracing one function found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traced {
    pub calls: Vec<TracedCall>,
    /// Why tracing stopped, if it did.
    pub stopped: Option<String>,
    /// Nodes without trace sessions, where Orrery holds the processes it traces.
    pub shared_on: Vec<String>,
}

/// Last calls per "Module.fun/arity".
pub type LastCalls = BTreeMap<String, Traced>;

/// Parse `KV.Calc.add/2`.
pub fn parse_mfa(s: &str) -> Option<(String, String, u32)> {
    let (mf, a) = s.rsplit_once('/')?;
    let (m, f) = mf.rsplit_once('.')?;
    Some((m.to_string(), f.to_string(), a.parse().ok()?))
}

/// Switch tracing of `module.fun/arity` on or off on every node.
pub async fn set(
    session: &Session,
    module: &str,
    fun: &str,
    arity: u32,
    on: bool,
) -> Result<(), String> {
    for n in session.nodes() {
        let mut args = vec![term::module(module), atom(fun), int(arity as i64)];
        let f = if on {
            args.push(map(vec![("max", int(10_000)), ("rate", int(1_000))]));
            "start"
        } else {
            "stop"
        };
        let r = n
            .conn
            .rpc(TRACE_MODULE, f, args, T)
            .await
            .map_err(|e| format!("tracing on {}: {e}", n.info.name))?;
        if !term::is_atom(&r, "ok") {
            return Err(format!(
                "tracing on {}: {}",
                n.info.name,
                pretty::to_elixir_compact(&r, 200)
            ));
        }
        if on {
            // Should this Orrery vanish, the guard switches its tracing off.
            crate::agent::undo_on_loss(
                &n.conn,
                session.owner(),
                "trace",
                (TRACE_MODULE, "stop_all", vec![]),
            )
            .await
            .map_err(|e| format!("tracing on {}: {e}", n.info.name))?;
        }
    }
    Ok(())
}

/// The last calls of every traced function, from every node.
pub async fn fetch(session: &Session) -> LastCalls {
    let mut out = LastCalls::new();
    for n in session.nodes() {
        let Ok(Term::Map(info)) = n.conn.rpc(TRACE_MODULE, "info", vec![], T).await else {
            continue;
        };
        for (k, v) in &info.map {
            let Some([m, f, a]) = term::as_tuple(k) else {
                continue;
            };
            let key = format!(
                "{}.{}/{}",
                pretty::module_name(term::as_atom(m).unwrap_or("?")),
                term::as_atom(f).unwrap_or("?"),
                term::as_int(a).unwrap_or(0)
            );
            let entry = out.entry(key).or_default();
            for c in term::get(v, "calls").map(term::list_ref).unwrap_or(&[]) {
                let args = term::get(c, "args")
                    .and_then(term::as_list)
                    .unwrap_or_default()
                    .iter()
                    .map(|a| pretty::to_elixir_compact(a, 60))
                    .collect::<Vec<_>>()
                    .join(", ");
                entry.calls.push(TracedCall {
                    node: n.info.name.clone(),
                    args,
                    result: term::get(c, "result")
                        .map(|r| pretty::to_elixir_compact(r, 80))
                        .unwrap_or_default(),
                    us: term::get_int(c, "us").unwrap_or(0),
                });
            }
            if let Some(s) = term::get(v, "stopped").filter(|s| !term::is_atom(s, "nil")) {
                entry.stopped = term::as_string(s);
            }
            if term::get(v, "shared").is_some_and(|s| term::is_atom(s, "true")) {
                entry.shared_on.push(n.info.name.clone());
            }
        }
    }
    out
}

/// Hover lines for a traced function.
pub fn render(fun: &str, traced: &Traced) -> String {
    let mut s = String::from("\n\nLast calls (traced):\n");
    if traced.calls.is_empty() {
        s.push_str("- none yet\n");
    }
    for c in &traced.calls {
        s.push_str(&format!(
            "- `{fun}({})` → `{}` in {} µs on {}\n",
            c.args, c.result, c.us, c.node
        ));
    }
    if !traced.calls.is_empty() {
        let mean =
            traced.calls.iter().map(|c| c.us).sum::<i64>() as f64 / traced.calls.len() as f64;
        s.push_str(&format!("\nMean time of these calls: {mean:.1} µs\n"));
    }
    if let Some(why) = &traced.stopped {
        s.push_str(&format!("\n_Tracing {why}._\n"));
    }
    if !traced.shared_on.is_empty() {
        s.push_str(&format!("\n{}\n", shared_note(&traced.shared_on)));
    }
    s
}

/// What tracing means on nodes without trace sessions (OTP 25, 26).
pub fn shared_note(nodes: &[String]) -> String {
    format!(
        "_{} has no trace sessions (OTP 27+), and a process has one tracer there: Orrery \
         traces the processes no other tracer had. A tracer you start now (`dbg`, \
         `recon_trace`, `redbug`) gets the processes created after it, not those. Orrery \
         takes back only the flags and patterns it set._",
        nodes.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfa() {
        assert_eq!(
            parse_mfa("KV.Calc.add/2"),
            Some(("KV.Calc".into(), "add".into(), 2))
        );
        assert_eq!(parse_mfa("add"), None);
    }

    #[test]
    fn the_hover_says_when_tracing_shares_the_tracer() {
        let mut t = Traced::default();
        assert!(!render("add", &t).contains("trace sessions"));
        t.shared_on.push("kv@host".into());
        let r = render("add", &t);
        assert!(r.contains("kv@host has no trace sessions"), "{r}");
    }
}

//! Call tracing of chosen functions ("Trace calls" in the editor): switched on per
//! function on every attached node; the last few calls with arguments and results come
//! back with each refresh. Bounded on the node (count and rate); past a bound it stops
//! itself and the hover says why.

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

/// Last calls per "Module.fun/arity", and why tracing stopped, if it did.
pub type LastCalls = BTreeMap<String, (Vec<TracedCall>, Option<String>)>;

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
        n.conn
            .rpc(TRACE_MODULE, f, args, T)
            .await
            .map_err(|e| format!("tracing on {}: {e}", n.info.name))?;
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
                entry.0.push(TracedCall {
                    node: n.info.name.clone(),
                    args,
                    result: term::get(c, "result")
                        .map(|r| pretty::to_elixir_compact(r, 80))
                        .unwrap_or_default(),
                    us: term::get_int(c, "us").unwrap_or(0),
                });
            }
            if let Some(s) = term::get(v, "stopped").filter(|s| !term::is_atom(s, "nil")) {
                entry.1 = term::as_string(s);
            }
        }
    }
    out
}

/// Hover lines for a traced function.
pub fn render(fun: &str, calls: &(Vec<TracedCall>, Option<String>)) -> String {
    let mut s = String::from("\n\nLast calls (traced):\n");
    if calls.0.is_empty() {
        s.push_str("- none yet\n");
    }
    for c in &calls.0 {
        s.push_str(&format!(
            "- `{fun}({})` → `{}` in {} µs on {}\n",
            c.args, c.result, c.us, c.node
        ));
    }
    if !calls.0.is_empty() {
        let mean = calls.0.iter().map(|c| c.us).sum::<i64>() as f64 / calls.0.len() as f64;
        s.push_str(&format!("\nMean time of these calls: {mean:.1} µs\n"));
    }
    if let Some(why) = &calls.1 {
        s.push_str(&format!("\n_Tracing {why}._\n"));
    }
    s
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
}

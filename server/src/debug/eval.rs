//! Evaluate at a breakpoint: bounded on the node (its own process, heap and time limits,
//! `self()` the paused process, no halting the node), audited, read-only sessions limited
//! to the frame's variables.

use super::{lock, vars, Debugger, EVAL_MAX_HEAP_WORDS, EVAL_TIMEOUT, READ_ONLY, T};
use crate::agent::DBG_MODULE;
use crate::beam::pretty;
use crate::beam::term::{self, atom, binary, int, map};

impl Debugger {
    /// Evaluate `expr` in the paused frame's bindings. `hover` only reads variables.
    pub async fn evaluate(
        &self,
        expr: &str,
        frame_id: Option<i64>,
        context: &str,
    ) -> Result<vars::Var, String> {
        let p = frame_id.and_then(|f| self.paused(f / 1000));
        let bindings = p.as_ref().map(Self::current_bindings).unwrap_or_default();
        let expr = expr.trim();
        if context == "hover" || !self.writes_allowed() {
            // Side-effect free: only variables of the frame.
            return match bindings.iter().find(|(n, _)| n == expr) {
                Some((n, v)) => Ok(lock(&self.state).vars.var(n, v)),
                None if context == "hover" => {
                    Err(format!("{expr} is not a variable of this frame"))
                }
                None => Err(format!(
                    "only the frame's variables can be shown: {READ_ONLY}"
                )),
            };
        }
        let conn = match &p {
            Some(p) => self.conn_of(&p.node),
            None => self.session.primary().ok(),
        }
        .ok_or("not attached to a node")?;
        let kw = term::list(
            bindings
                .iter()
                .map(|(n, v)| term::tuple(vec![atom(n), v.clone()]))
                .collect(),
        );
        let opts = map(vec![
            (
                "self",
                p.as_ref().map(|p| p.pid.clone()).unwrap_or(atom("nil")),
            ),
            ("timeout", int(EVAL_TIMEOUT.as_millis() as i64)),
            ("max_heap_words", int(EVAL_MAX_HEAP_WORDS)),
        ]);
        let node_name = p
            .as_ref()
            .map(|p| p.node.clone())
            .unwrap_or_else(|| self.session.node().to_string());
        let r = conn
            .rpc(
                DBG_MODULE,
                "eval_bounded",
                vec![binary(expr), kw, opts],
                EVAL_TIMEOUT + T,
            )
            .await
            .map_err(|e| e.to_string())?;
        let _ = crate::audit::append(
            &self.root,
            &crate::audit::Entry {
                time: crate::audit::now_rfc3339(),
                node: &node_name,
                action: "evaluate",
                target: &p
                    .as_ref()
                    .map(|p| pretty::to_elixir_compact(&p.pid, 40))
                    .unwrap_or_else(|| "node".into()),
                before: None,
                after: None,
                detail: Some(expr),
            },
        );
        match term::as_tuple(&r) {
            Some([ok, v]) if term::is_atom(ok, "ok") => Ok(lock(&self.state).vars.var("result", v)),
            Some([_, e]) => {
                Err(term::as_string(e).unwrap_or_else(|| pretty::to_elixir_compact(e, 300)))
            }
            _ => Err("unexpected answer".into()),
        }
    }
}

//! `workspace/executeCommand` beyond the built-in ones: the writes to live state
//! (`orrery.replaceState`, `orrery.etsInsert`, `orrery.etsDelete`, `orrery.sendMessage`,
//! `orrery.undo`), each refused unless `allowWrites` is on. Arguments are one JSON object,
//! e.g. `{"target": "KV.Bucket", "expression": "Map.put(state, :a, 1)"}`; the target is a
//! module, a registered name, a pid or a name tuple, and `key` picks one of a module's
//! named processes (`{"target": "Todo.Server", "key": "\"bob\""}`); an optional `node`
//! picks a cluster peer (default: the primary node).

use super::Backend;
use crate::core::Core;
use crate::live::writes::{self, WriteCtx};
use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::ExecuteCommandParams;

/// Every command the server advertises.
pub const COMMANDS: &[&str] = &[
    "orrery.inspectState",
    "orrery.status",
    "orrery.replaceState",
    "orrery.etsInsert",
    "orrery.etsDelete",
    "orrery.sendMessage",
    "orrery.undo",
    "orrery.traceCalls",
];

fn failed(msg: impl Into<String>) -> Error {
    let mut e = Error::internal_error();
    e.message = msg.into().into();
    e
}

/// The string argument `key` of the first argument object.
fn arg<'a>(args: &'a Value, key: &str, command: &str) -> Result<&'a str> {
    args.get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::invalid_params(format!("{command} needs a string argument `{key}`")))
}

/// The optional `key` argument: which of a module's named processes (`{1, 2}`).
fn key(args: &Value) -> Option<&str> {
    args.get("key").and_then(|v| v.as_str())
}

pub async fn execute(b: &Backend, p: ExecuteCommandParams) -> Result<Option<Value>> {
    let args = p.arguments.first().cloned().unwrap_or(Value::Null);
    let cmd = p.command.as_str();
    match cmd {
        "orrery.replaceState" => {
            let (target, expr) = (arg(&args, "target", cmd)?, arg(&args, "expression", cmd)?);
            let target = b.core.target(target, key(&args));
            write(&b.core, &args, |cx| async move {
                writes::replace_state(&cx, &target, expr).await
            })
            .await
        }
        "orrery.etsInsert" => {
            let (table, row) = (arg(&args, "table", cmd)?, arg(&args, "row", cmd)?);
            write(&b.core, &args, |cx| async move {
                writes::ets_insert(&cx, table, row).await
            })
            .await
        }
        "orrery.etsDelete" => {
            let (table, key) = (arg(&args, "table", cmd)?, arg(&args, "key", cmd)?);
            write(&b.core, &args, |cx| async move {
                writes::ets_delete(&cx, table, key).await
            })
            .await
        }
        "orrery.sendMessage" => {
            let (target, msg) = (arg(&args, "target", cmd)?, arg(&args, "message", cmd)?);
            let target = b.core.target(target, key(&args));
            write(&b.core, &args, |cx| async move {
                writes::send_message(&cx, &target, msg).await
            })
            .await
        }
        "orrery.undo" => {
            let force = args.get("force").and_then(|f| f.as_bool()).unwrap_or(false);
            write(&b.core, &args, |cx| async move {
                writes::undo(&cx, force).await
            })
            .await
        }
        "orrery.traceCalls" => {
            let mfa = match &args {
                Value::String(s) => s.clone(),
                v => arg(v, "function", cmd)?.to_string(),
            };
            let on = b.core.toggle_trace(&mfa).await.map_err(failed)?;
            Ok(Some(Value::String(format!(
                "{} {mfa}",
                if on {
                    "tracing calls of"
                } else {
                    "stopped tracing"
                }
            ))))
        }
        super::test_lenses::DEBUG_TEST => Err(failed(format!(
            "this editor has no handler for {cmd}: start this launch configuration with its \
             debugger (orrery dap): {args}"
        ))),
        _ => Err(Error::invalid_params(format!("unknown command {cmd}"))),
    }
}

/// Check `allowWrites`, the session and the workspace root, then run one write.
async fn write<F, Fut>(core: &Core, args: &Value, f: F) -> Result<Option<Value>>
where
    F: FnOnce(WriteCtx) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Value, String>>,
{
    writes::check_allowed(core.settings().allow_writes()).map_err(failed)?;
    let session = core
        .session()
        .ok_or_else(|| failed("Orrery is not attached to a node yet"))?;
    let root = core
        .root
        .read()
        .ok()
        .and_then(|r| r.clone())
        .ok_or_else(|| failed("no workspace folder: Orrery needs one for .orrery/audit.log"))?;
    let cx = WriteCtx {
        session,
        root,
        node: args
            .get("node")
            .and_then(|n| n.as_str())
            .map(str::to_string),
    };
    f(cx).await.map(Some).map_err(failed)
}

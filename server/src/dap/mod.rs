//! The debug adapter: DAP over stdio, mapped onto [`crate::debug::Debugger`]. Requests are
//! handled in order; events from the node go out as they come. When the client goes away
//! without `disconnect`, the node is left as found all the same.

pub mod bridge;
mod wire;

use crate::debug::{BreakpointReq, Debugger, Event};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use wire::Out;

/// A launched task's name and exit status, reported when the session ends.
type LaunchedTask = Arc<Mutex<Option<(String, watch::Receiver<Option<i32>>)>>>;

fn capabilities() -> Value {
    json!({
        "supportsConfigurationDoneRequest": true,
        "supportsConditionalBreakpoints": true,
        "supportsHitConditionalBreakpoints": true,
        "supportsLogPoints": true,
        "supportsEvaluateForHovers": true,
        "supportsTerminateRequest": true,
        "supportsStepBack": true,
        "supportsSetVariable": false,
        "supportsFunctionBreakpoints": true,
        "supportsDelayedStackTraceLoading": false,
    })
}

struct Adapter {
    out: Out,
    debugger: Option<Arc<Debugger>>,
    /// A saved recording opened with `launch` + `recording` (no node).
    replay: Option<crate::debug::replay::Replay>,
    events_tx: mpsc::UnboundedSender<Event>,
    /// The launched node waits at its gate until `configurationDone`.
    gated: bool,
    task: LaunchedTask,
    /// Set when this session runs inside the language server (relayed by `orrery dap`).
    shared: Option<Arc<crate::core::Core>>,
}

/// Serve DAP on stdin/stdout until the client disconnects or goes away. A `launch` or
/// `attach` that the workspace's language server can take is relayed to it (see
/// [`bridge`]); otherwise the session runs here.
pub async fn serve_stdio() {
    let (out, writer) = wire::writer(tokio::io::stdout());
    serve(wire::Reader::new(tokio::io::stdin()), out, None).await;
    let _ = writer.await;
}

/// Serve one DAP session: requests from `reader`, answers and events to `out`. `shared` is
/// the language server's core when the session runs inside it.
async fn serve<R: tokio::io::AsyncRead + Unpin>(
    mut reader: wire::Reader<R>,
    out: Out,
    shared: Option<Arc<crate::core::Core>>,
) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let ev_out = out.clone();
    let task: LaunchedTask = Arc::default();
    let ev_task = task.clone();
    tokio::spawn(async move {
        while let Some(ev) = events_rx.recv().await {
            match ev {
                Event::Stopped { thread_id, reason } => ev_out.event(
                    "stopped",
                    json!({"reason": reason, "threadId": thread_id, "allThreadsStopped": false}),
                ),
                Event::Output(text) => {
                    ev_out.event("output", json!({"category": "console", "output": text}))
                }
                Event::ThreadExited(t) => {
                    ev_out.event("thread", json!({"reason": "exited", "threadId": t}))
                }
                Event::Terminated(reason) => {
                    let launched = ev_task.lock().ok().and_then(|mut t| t.take());
                    match launched {
                        Some((name, mut exit)) => {
                            // The task ended (its node halted): report how.
                            let waited = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                exit.wait_for(|c| c.is_some()),
                            )
                            .await;
                            let code = waited.ok().and_then(|c| *c.ok()?).unwrap_or(-1);
                            ev_out.event(
                                "output",
                                json!({"category": "console", "output": format!("Orrery: `{name}` exited with status {code}\n")}),
                            );
                            ev_out.event("exited", json!({"exitCode": code}));
                        }
                        None => ev_out.event(
                            "output",
                            json!({"category": "important", "output": format!("Orrery: {reason}\n")}),
                        ),
                    }
                    ev_out.event("terminated", json!({}));
                }
            }
        }
    });
    let mut adapter = Adapter {
        out: out.clone(),
        debugger: None,
        replay: None,
        events_tx,
        gated: false,
        task,
        shared,
    };
    loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                adapter.out.event("output", json!({"category": "stderr", "output": format!("Orrery: malformed DAP message: {e}\n")}));
                continue;
            }
        };
        if msg["type"] != "request" {
            continue;
        }
        let command = msg["command"].as_str().unwrap_or("").to_string();
        let seq = msg["seq"].as_i64().unwrap_or(0);
        let args = msg.get("arguments").cloned().unwrap_or(Value::Null);
        let standalone = adapter.shared.is_none() && adapter.debugger.is_none();
        if standalone && (command == "launch" || command == "attach") && args["recording"].is_null()
        {
            let root = session_root(&args);
            if let Some((server_rx, server_out)) = bridge::offer(&root, &command, &args).await {
                tracing::info!("debug session relayed to the language server");
                bridge::relay(msg, &mut reader, &adapter.out, server_rx, server_out).await;
                return;
            }
        }
        let result = adapter.handle(&command, &args).await;
        match result {
            Ok(body) => adapter.out.respond(seq, &command, true, body, None),
            Err(message) => adapter
                .out
                .respond(seq, &command, false, Value::Null, Some(message)),
        }
        if command == "disconnect" || command == "terminate" {
            break;
        }
    }
    // The client is gone (or said goodbye): leave the node as found.
    if let Some(d) = adapter.debugger.take() {
        d.disconnect().await;
    }
}

/// The mix root a launch/attach is about (its `cwd`, else ours).
fn session_root(args: &Value) -> PathBuf {
    let cwd = args["cwd"]
        .as_str()
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    crate::core::normalize(&crate::managed::find_mix_root(&cwd).unwrap_or(cwd))
}

fn path_arg(v: &Value) -> Option<PathBuf> {
    v.as_str().map(PathBuf::from)
}

impl Adapter {
    fn dbg(&self) -> Result<&Debugger, String> {
        self.debugger
            .as_deref()
            .ok_or_else(|| "not attached: launch or attach first".to_string())
    }

    /// Requests served from a saved recording.
    fn handle_replay(&self, command: &str, args: &Value) -> Option<Result<Value, String>> {
        let r = self.replay.as_ref()?;
        let t = args["threadId"].as_i64().unwrap_or(1);
        let step = |cmd: &str| -> Result<Value, String> {
            r.step(t, cmd)?;
            self.out.event(
                "stopped",
                json!({"reason": "step", "threadId": t, "allThreadsStopped": false}),
            );
            Ok(Value::Null)
        };
        Some(match command {
            "configurationDone" => {
                self.out.event("stopped", json!({"reason": "entry", "threadId": 1, "allThreadsStopped": true, "description": "recording"}));
                Ok(Value::Null)
            }
            "setBreakpoints" => Ok(json!({"breakpoints": args["breakpoints"].as_array().cloned().unwrap_or_default().iter().map(|b| json!({"verified": false, "line": b["line"], "message": "a replay has no live breakpoints"})).collect::<Vec<_>>()})),
            "threads" => Ok(json!({"threads": r.threads().into_iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>()})),
            "stackTrace" => {
                let frames: Vec<Value> = r
                    .stack(t)
                    .into_iter()
                    .map(|f| json!({"id": f.id, "name": f.name, "line": f.line, "column": 1, "source": f.path.map(|p| json!({"path": p}))}))
                    .collect();
                Ok(json!({"totalFrames": frames.len(), "stackFrames": frames}))
            }
            "scopes" => Ok(json!({"scopes": r.scopes(args["frameId"].as_i64().unwrap_or(0)).into_iter().map(|(n, v)| json!({"name": n, "variablesReference": v, "expensive": false})).collect::<Vec<_>>()})),
            "variables" => Ok(json!({"variables": r.variables(args["variablesReference"].as_i64().unwrap_or(0), args["start"].as_u64().unwrap_or(0) as usize, args["count"].as_u64().filter(|c| *c > 0).map(|c| c as usize)).into_iter().map(var_json).collect::<Vec<_>>()})),
            "evaluate" => r
                .evaluate(args["expression"].as_str().unwrap_or(""), args["frameId"].as_i64())
                .map(|v| json!({"result": v.value, "type": v.kind, "variablesReference": v.reference})),
            "next" => step("next"),
            "stepIn" => step("step_in"),
            "stepOut" => step("step_out"),
            "continue" => step("continue").map(|_| json!({"allThreadsContinued": false})),
            "stepBack" => step("back"),
            "reverseContinue" => step("reverse"),
            _ => return None,
        })
    }

    async fn handle(&mut self, command: &str, args: &Value) -> Result<Value, String> {
        if let Some(r) = self.handle_replay(command, args) {
            return r;
        }
        match command {
            "initialize" => Ok(capabilities()),
            "launch" | "attach" => self.start(command, args).await,
            "configurationDone" => {
                if std::mem::take(&mut self.gated) {
                    self.dbg()?.release_gate().await?;
                }
                Ok(Value::Null)
            }
            "setBreakpoints" => {
                let path =
                    path_arg(&args["source"]["path"]).ok_or("setBreakpoints needs source.path")?;
                let reqs: Vec<BreakpointReq> = args["breakpoints"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|b| BreakpointReq {
                        line: b["line"].as_u64().unwrap_or(0) as u32,
                        condition: b["condition"].as_str().map(str::to_string),
                        hit_condition: b["hitCondition"].as_str().map(str::to_string),
                        log_message: b["logMessage"].as_str().map(str::to_string),
                    })
                    .collect();
                let results = self.dbg()?.set_breakpoints(&path, &reqs).await;
                let bps: Vec<Value> = results
                    .iter()
                    .map(|r| json!({"verified": r.verified, "line": r.line, "message": r.message, "source": {"path": path}}))
                    .collect();
                Ok(json!({"breakpoints": bps}))
            }
            "setFunctionBreakpoints" => {
                let reqs: Vec<(String, BreakpointReq)> = args["breakpoints"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|b| {
                        (
                            b["name"].as_str().unwrap_or("").to_string(),
                            BreakpointReq {
                                line: 0,
                                condition: b["condition"].as_str().map(str::to_string),
                                hit_condition: b["hitCondition"].as_str().map(str::to_string),
                                log_message: None,
                            },
                        )
                    })
                    .collect();
                let results = self.dbg()?.set_function_breakpoints(&reqs).await;
                let bps: Vec<Value> = results
                    .iter()
                    .map(|r| json!({"verified": r.verified, "line": r.line, "message": r.message}))
                    .collect();
                Ok(json!({"breakpoints": bps}))
            }
            "setExceptionBreakpoints" => Ok(json!({"breakpoints": []})),
            "threads" => {
                let threads: Vec<Value> = match &self.debugger {
                    Some(d) => d
                        .all_threads()
                        .await
                        .into_iter()
                        .map(|(id, name)| json!({"id": id, "name": name}))
                        .collect(),
                    None => vec![],
                };
                Ok(json!({"threads": threads}))
            }
            "stackTrace" => {
                let t = args["threadId"].as_i64().unwrap_or(0);
                let frames = self.dbg()?.stack(t);
                let start = args["startFrame"].as_u64().unwrap_or(0) as usize;
                let levels = args["levels"]
                    .as_u64()
                    .filter(|l| *l > 0)
                    .map(|l| l as usize)
                    .unwrap_or(usize::MAX);
                let total = frames.len();
                let list: Vec<Value> = frames
                    .into_iter()
                    .skip(start)
                    .take(levels)
                    .map(|f| {
                        let mut v = json!({"id": f.id, "name": f.name, "line": f.line, "column": 1});
                        if let Some(p) = f.path {
                            v["source"] = json!({"path": p, "name": p.file_name().map(|n| n.to_string_lossy().into_owned())});
                        }
                        v
                    })
                    .collect();
                Ok(json!({"stackFrames": list, "totalFrames": total}))
            }
            "scopes" => {
                let f = args["frameId"].as_i64().unwrap_or(0);
                let scopes: Vec<Value> = self
                    .dbg()?
                    .scopes(f)
                    .into_iter()
                    .map(|(name, r)| json!({"name": name, "variablesReference": r, "expensive": false, "presentationHint": if name == "Locals" { "locals" } else { "registers" }}))
                    .collect();
                Ok(json!({"scopes": scopes}))
            }
            "variables" => {
                let r = args["variablesReference"].as_i64().unwrap_or(0);
                let start = args["start"].as_u64().unwrap_or(0) as usize;
                let count = args["count"]
                    .as_u64()
                    .filter(|c| *c > 0)
                    .map(|c| c as usize);
                let vars: Vec<Value> = self
                    .dbg()?
                    .variables(r, start, count)
                    .into_iter()
                    .map(var_json)
                    .collect();
                Ok(json!({"variables": vars}))
            }
            "continue" | "next" | "stepIn" | "stepOut" => {
                let t = args["threadId"].as_i64().unwrap_or(0);
                let cmd = match command {
                    "continue" => "continue",
                    "next" => "next",
                    "stepIn" => "step_in",
                    _ => "step_out",
                };
                let ran = self.dbg()?.resume(t, cmd).await?;
                if !ran {
                    // Moved through the recording (or back to the live point).
                    self.out.event(
                        "stopped",
                        json!({"reason": "step", "threadId": t, "allThreadsStopped": false}),
                    );
                }
                if command == "continue" {
                    Ok(json!({"allThreadsContinued": false}))
                } else {
                    Ok(Value::Null)
                }
            }
            "stepBack" | "reverseContinue" => {
                let t = args["threadId"].as_i64().unwrap_or(0);
                self.dbg()?
                    .step_back(t, command == "reverseContinue")
                    .await?;
                self.out.event("stopped", json!({"reason": "step", "threadId": t, "allThreadsStopped": false, "description": "recorded"}));
                Ok(Value::Null)
            }
            "orrery/timeline" => self.dbg()?.timeline(args).await,
            "orrery/valueHistory" => self.dbg()?.value_history(args).await,
            "orrery/stateHistory" => self.dbg()?.state_history(args).await,
            "orrery/saveRecording" => {
                let d = self.dbg()?;
                let path = args["path"]
                    .as_str()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| d.root.join(".orrery/recording.json"));
                let path = if path.is_relative() {
                    d.root.join(path)
                } else {
                    path
                };
                d.save_recording(&path).await
            }
            "pause" => {
                let t = args["threadId"]
                    .as_i64()
                    .unwrap_or(crate::debug::ANY_THREAD);
                let note = self.dbg()?.pause(t).await?;
                if !note.is_empty() {
                    self.out
                        .event("output", json!({"category": "console", "output": note}));
                }
                Ok(Value::Null)
            }
            "evaluate" => {
                let expr = args["expression"].as_str().unwrap_or("");
                let frame = args["frameId"].as_i64();
                let context = args["context"].as_str().unwrap_or("repl");
                let v = self.dbg()?.evaluate(expr, frame, context).await?;
                Ok(
                    json!({"result": v.value, "type": v.kind, "variablesReference": v.reference, "indexedVariables": v.indexed, "namedVariables": v.named}),
                )
            }
            "disconnect" | "terminate" => {
                if let Some(d) = self.debugger.take() {
                    d.disconnect().await;
                }
                Ok(Value::Null)
            }
            other => Err(format!("{other} is not supported by Orrery")),
        }
    }

    async fn start(&mut self, command: &str, args: &Value) -> Result<Value, String> {
        if self.debugger.is_some() || self.replay.is_some() {
            return Err("already attached".into());
        }
        if let Some(rec) = args["recording"].as_str() {
            // Replay a saved recording: no node needed.
            let cwd = args["cwd"]
                .as_str()
                .map(PathBuf::from)
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_default();
            let path = if std::path::Path::new(rec).is_relative() {
                cwd.join(rec)
            } else {
                PathBuf::from(rec)
            };
            self.replay = Some(crate::debug::replay::Replay::open(&path, &cwd)?);
            self.out.event("initialized", json!({}));
            return Ok(Value::Null);
        }
        // Inside the language server the project is the server's (the bridge that handed
        // the session over is named after it), whatever that process's cwd.
        let root = match self.shared.as_ref().and_then(|c| c.mix_root()) {
            Some(r) if args["cwd"].is_null() => crate::core::normalize(&r),
            _ => session_root(args),
        };
        let shared_session = self.shared.as_ref().and_then(|c| c.session());
        if let Some(session) = shared_session {
            // Inside the language server: debug the node it is attached to.
            let node = session.node().to_string();
            let reloader = self
                .shared
                .as_ref()
                .map(|c| c.reloader.clone())
                .unwrap_or_default();
            let debugger =
                Debugger::on_session(&root, session, reloader, self.events_tx.clone()).await?;
            let allowed = self
                .shared
                .as_ref()
                .map(|c| c.settings().allow_writes())
                .unwrap_or(false);
            debugger.set_writes_allowed(args["allowWrites"].as_bool().unwrap_or(allowed));
            self.out.event("output", json!({"category": "console", "output": format!("Orrery: debugging {node} through the language server's connection\n")}));
            return self.started(debugger, args).await;
        }
        let settings = crate::config::Settings {
            node: args["node"].as_str().map(str::to_string),
            cookie: args["cookie"].as_str().map(str::to_string),
            cookie_file: args["cookieFile"].as_str().map(PathBuf::from),
            allow_writes: args["allowWrites"].as_bool(),
            ..Default::default()
        };
        let debugger = match (&settings.node, command) {
            (Some(node), _) => {
                let cookie = settings.resolve_cookie()?;
                Debugger::attach(&root, node, &cookie, None, self.events_tx.clone()).await?
            }
            (None, "attach") => return Err("attach needs `node` (name@host)".into()),
            (None, _) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                let out = self.out.clone();
                tokio::spawn(async move {
                    while let Some(line) = rx.recv().await {
                        out.event(
                            "output",
                            json!({"category": "stdout", "output": format!("{line}\n")}),
                        );
                    }
                });
                let launch = launch_of(args)?;
                let m = crate::managed::ManagedNode::launch(&root, &launch, tx).await?;
                if launch.task.is_some() {
                    if let Ok(mut t) = self.task.lock() {
                        *t = Some((launch.describe(), m.exit_status()));
                    }
                }
                self.gated = true;
                let (node, cookie) = (m.node.clone(), m.cookie.clone());
                Debugger::attach(&root, &node, &cookie, Some(m), self.events_tx.clone()).await?
            }
        };
        debugger.set_writes_allowed(settings.allow_writes());
        self.started(debugger, args).await
    }

    async fn started(&mut self, debugger: Arc<Debugger>, args: &Value) -> Result<Value, String> {
        if args["record"].as_bool().unwrap_or(false) {
            let limit = args["recordLimit"].as_i64().unwrap_or(10_000);
            debugger.set_recording(true, limit).await?;
        }
        self.debugger = Some(debugger);
        self.out.event("initialized", json!({}));
        Ok(Value::Null)
    }
}

/// What `launch` runs: `task` + `taskArgs` (`mix test`, as in ElixirLS), or `script`
/// (`mix run <script>`), or the app itself; `env` adds environment variables.
fn launch_of(args: &Value) -> Result<crate::managed::Launch, String> {
    let strings = |v: &Value, what: &str| -> Result<Vec<String>, String> {
        match v {
            Value::Null => Ok(vec![]),
            Value::Array(a) => a
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{what}` must be a list of strings"))
                })
                .collect(),
            _ => Err(format!("`{what}` must be a list of strings")),
        }
    };
    let mut launch = crate::managed::Launch {
        gated: true,
        ..Default::default()
    };
    match (args["task"].as_str(), args["script"].as_str()) {
        (Some(_), Some(_)) => return Err("give either `task` or `script`, not both".into()),
        (Some(task), None) => {
            launch.task = Some(task.to_string());
            launch.task_args = strings(&args["taskArgs"], "taskArgs")?;
        }
        (None, Some(script)) => {
            launch.task = Some("run".into());
            launch.task_args = vec![script.to_string()];
        }
        (None, None) => {}
    }
    if let Some(env) = args["env"].as_object() {
        for (k, v) in env {
            let v = v
                .as_str()
                .ok_or_else(|| format!("env.{k} must be a string"))?;
            launch.env.push((k.clone(), v.to_string()));
        }
    }
    Ok(launch)
}

fn var_json(v: crate::debug::vars::Var) -> Value {
    json!({
        "name": v.name,
        "value": v.value,
        "type": v.kind,
        "variablesReference": v.reference,
        "indexedVariables": v.indexed,
        "namedVariables": v.named,
    })
}

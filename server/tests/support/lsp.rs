//! A small, strict LSP client over the real `orrery lsp` process's stdio.

use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct LspClient {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications and server requests seen so far.
    pub seen: Vec<Value>,
}

use orrery::framing::read_message;

impl LspClient {
    pub fn start(envs: &[(&str, &str)]) -> LspClient {
        Self::start_logged(envs, Stdio::inherit())
    }

    /// Like `start`, with the server's stderr (its log) going to `stderr`.
    pub fn start_logged(envs: &[(&str, &str)], stderr: impl Into<Stdio>) -> LspClient {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orrery"));
        cmd.arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("orrery binary");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(v) = read_message(&mut r) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        LspClient {
            child,
            stdin: Some(stdin),
            rx,
            next_id: 1,
            seen: vec![],
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Write bytes as they are (no framing): for hostile-input tests.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send_raw(&mut self, body: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        write!(stdin, "Content-Length: {}\r\n\r\n{}", body.len(), body).unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, v: &Value) {
        let body = v.to_string();
        self.send_raw(&body);
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Handle one incoming message: answer server requests, record notifications.
    fn handle(&mut self, v: Value) -> Option<Value> {
        if v.get("method").is_some() {
            if let Some(id) = v.get("id").cloned() {
                let result = match v["method"].as_str().unwrap_or("") {
                    "workspace/configuration" => json!([null]),
                    _ => Value::Null,
                };
                self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
            }
            self.seen.push(v);
            return None;
        }
        Some(v)
    }

    /// Send a request and wait for its response (result or error object).
    pub fn request(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(&msg);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    if let Some(resp) = self.handle(v) {
                        if resp["id"] == json!(id) {
                            return resp;
                        }
                        // Other responses (e.g. parse errors, `"id": null`) are kept.
                        self.seen.push(resp);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no response to {method} within {timeout:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server closed stdout while waiting for {method}")
                }
            }
        }
    }

    /// The `result` of a request (panics on an error response).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params, Duration::from_secs(30));
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    /// Process incoming messages for a while (until `pred` matches a seen message).
    pub fn wait_seen(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    // Responses are kept too (see `request`).
                    if let Some(resp) = self.handle(v) {
                        self.seen.push(resp);
                    }
                    if let Some(last) = self.seen.last() {
                        if pred(last) {
                            return last.clone();
                        }
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; seen: {:?}", self.seen),
            }
        }
    }

    /// How many messages with `method` have been seen.
    pub fn count(&self, method: &str) -> usize {
        self.seen.iter().filter(|v| v["method"] == method).count()
    }

    /// Wait until `n` messages with `method` have been seen; returns the n-th.
    pub fn wait_nth(&mut self, timeout: Duration, method: &str, n: usize) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<&Value> = self.seen.iter().filter(|v| v["method"] == method).collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.handle(v);
                }
                Err(_) => panic!("timed out waiting for {method} #{n}; seen: {:?}", self.seen),
            }
        }
    }

    /// initialize + initialized with a workspace root and options.
    pub fn initialize(&mut self, root: &Path, options: Value) -> Value {
        self.initialize_with(root, options, json!({}))
    }

    /// Like `initialize`, with `capabilities` merged into the client capabilities
    /// (one level deep: `{"textDocument": {...}}` adds to `textDocument`).
    pub fn initialize_with(&mut self, root: &Path, options: Value, capabilities: Value) -> Value {
        let uri = format!("file://{}", root.display());
        let mut caps = json!({
            "window": {"workDoneProgress": true},
            "workspace": {"configuration": true, "inlayHint": {"refreshSupport": true}, "codeLens": {"refreshSupport": true}},
            "textDocument": {"hover": {"contentFormat": ["markdown"]}}
        });
        for (k, v) in capabilities.as_object().unwrap() {
            match (caps[k].as_object_mut(), v.as_object()) {
                (Some(have), Some(more)) => have.extend(more.clone()),
                _ => caps[k] = v.clone(),
            }
        }
        let r = self.call(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": uri,
                "workspaceFolders": [{"uri": uri, "name": "ws"}],
                "initializationOptions": options,
                "capabilities": caps
            }),
        );
        self.notify("initialized", json!({}));
        r
    }

    /// Poll `orrery/status` until `pred` holds.
    pub fn wait_status(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.call("orrery/status", Value::Null);
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status {s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn open(&mut self, path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        self.open_text(path, &text)
    }

    /// Open `path` in the editor with `text` (a new file: open it before it is written,
    /// so the watcher leaves it to didSave).
    pub fn open_text(&mut self, path: &Path, text: &str) -> String {
        let uri = format!("file://{}", path.display());
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "elixir", "version": 1, "text": text}}),
        );
        uri
    }

    /// shutdown + exit, then wait for the process to end.
    pub fn shutdown(mut self) -> std::process::ExitStatus {
        let _ = self.request("shutdown", Value::Null, Duration::from_secs(30));
        self.notify("exit", Value::Null);
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("orrery lsp did not exit after shutdown/exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// An LSP client attached to `node` with the workspace `root` (`refreshMs` 200, plus
/// `extra` options).
pub fn start_attached(node: &super::TestNode, root: &Path, extra: Value) -> LspClient {
    let mut c = LspClient::start(&[]);
    let mut opts = json!({"node": node.node, "cookie": node.cookie, "refreshMs": 200});
    for (k, v) in extra.as_object().unwrap() {
        opts[k] = v.clone();
    }
    c.initialize(root, opts);
    c.wait_status(Duration::from_secs(90), "attach", |s| {
        s["attached"] == json!(true)
    });
    c
}

/// (line, character) just after the first occurrence of `needle` in `src`.
pub fn after(src: &str, needle: &str) -> (u32, u32) {
    src.lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.find(needle)
                .map(|c| (i as u32, (c + needle.len()) as u32))
        })
        .unwrap_or_else(|| panic!("{needle} not in source"))
}

/// The hover text at a position.
pub fn hover(c: &mut LspClient, uri: &str, (line, character): (u32, u32)) -> String {
    let r = c.call(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}),
    );
    r["contents"]["value"].as_str().unwrap_or("").to_string()
}

/// Hover after `needle` in `path` until the text has every one of `want` (or `timeout`).
pub fn wait_hover(
    c: &mut LspClient,
    path: &Path,
    needle: &str,
    want: &[&str],
    timeout: Duration,
) -> String {
    let src = std::fs::read_to_string(path).unwrap();
    let uri = format!("file://{}", path.display());
    let at = after(&src, needle);
    let deadline = Instant::now() + timeout;
    loop {
        let h = hover(c, &uri, at);
        if want.iter().all(|w| h.contains(w)) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "hover on {needle} never showed {want:?}; last: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Save `path` (didSave) and return the next `window/showMessage`.
/// Save `path` and wait for the save's message that names `module` (other messages, of
/// attaches or other saves, are passed over).
pub fn save_for(c: &mut LspClient, path: &Path, module: &str) -> String {
    let mut n = c.count("window/showMessage");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", path.display())}}),
    );
    loop {
        let v = c.wait_nth(Duration::from_secs(90), "window/showMessage", n + 1);
        let msg = v["params"]["message"].as_str().unwrap_or("").to_string();
        if msg.contains(module) {
            return msg;
        }
        n += 1;
    }
}

pub fn save_and_wait(c: &mut LspClient, path: &Path) -> String {
    let n = c.count("window/showMessage");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": format!("file://{}", path.display())}}),
    );
    let v = c.wait_nth(Duration::from_secs(90), "window/showMessage", n + 1);
    v["params"]["message"].as_str().unwrap_or("").to_string()
}

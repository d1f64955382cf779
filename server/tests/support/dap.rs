//! A small DAP client over the real `orrery dap` process's stdio.

use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub struct DapClient {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    seq: i64,
    pub events: Vec<Value>,
}

use orrery::framing::read_message;

impl DapClient {
    pub fn start() -> DapClient {
        Self::start_with(&[])
    }

    /// `orrery dap` with extra environment variables.
    pub fn start_with(envs: &[(&str, &str)]) -> DapClient {
        Self::start_in(None, envs)
    }

    /// `orrery dap` run in `cwd` (as an editor starts it in the workspace), with extra
    /// environment variables.
    pub fn start_in(cwd: Option<&std::path::Path>, envs: &[(&str, &str)]) -> DapClient {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orrery"));
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.arg("dap")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("orrery binary");
        let stdin = child.stdin.take();
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
        DapClient {
            child,
            stdin,
            rx,
            seq: 1,
            events: vec![],
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Write bytes as they are (no framing): for hostile-input tests.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send_raw(&mut self, body: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        write!(stdin, "Content-Length: {}\r\n\r\n{}", body.len(), body).unwrap();
        stdin.flush().unwrap();
    }

    /// Send a request and wait for its response.
    pub fn request(&mut self, command: &str, args: Value) -> Value {
        let seq = self.seq;
        self.seq += 1;
        let msg = json!({"seq": seq, "type": "request", "command": command, "arguments": args});
        self.send_raw(&msg.to_string());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no response to {command}; events {:?}", self.events));
            if v["type"] == "event" {
                self.events.push(v);
                continue;
            }
            if v["request_seq"] == json!(seq) {
                return v;
            }
        }
    }

    /// The response body; panics when the request failed.
    pub fn ok(&mut self, command: &str, args: Value) -> Value {
        let r = self.request(command, args);
        assert_eq!(r["success"], json!(true), "{command} failed: {r}");
        r["body"].clone()
    }

    /// Wait for the next event named `name` not yet consumed; consumes it.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Value {
        self.wait_event_any(&[name], timeout)
    }

    /// Wait for the next event with one of `names`, in arrival order; consumes it.
    pub fn wait_event_any(&mut self, names: &[&str], timeout: Duration) -> Value {
        let wanted = |e: &Value| names.iter().any(|n| e["event"] == *n);
        if let Some(i) = self.events.iter().position(wanted) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {names:?} event; events {:?}", self.events));
            if v["type"] == "event" && wanted(&v) {
                return v;
            }
            if v["type"] == "event" {
                self.events.push(v);
            }
        }
    }

    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `initialize`, then `attach` to `node` (its name and cookie, `cwd`, and the keys of
    /// `extra`), then wait for `initialized`.
    pub fn attach_to(&mut self, node: &super::TestNode, cwd: &std::path::Path, extra: Value) {
        self.ok(
            "initialize",
            json!({"adapterID": "orrery", "linesStartAt1": true}),
        );
        let mut args = json!({"node": node.node, "cookie": node.cookie, "cwd": cwd});
        for (k, v) in extra.as_object().into_iter().flatten() {
            args[k] = v.clone();
        }
        self.ok("attach", args);
        self.wait_event("initialized", Duration::from_secs(90));
    }

    /// Wait for an `output` event whose text contains `needle`; its text.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.wait_event("output", left);
            let text = e["body"]["output"].as_str().unwrap_or("").to_string();
            if text.contains(needle) {
                return text;
            }
        }
    }
}

impl Drop for DapClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

//! Settings: `.orrery.toml` in the workspace root, then `initializationOptions`, then
//! `workspace/configuration` (section `orrery`); later sources win field by field.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which inlay hints to show.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct InlayHintConfig {
    pub calls: bool,
    pub processes: bool,
    pub ets: bool,
}

impl Default for InlayHintConfig {
    fn default() -> Self {
        Self {
            calls: true,
            processes: true,
            ets: true,
        }
    }
}

/// `attachRunning`: with no `node` set, a node already running this project (a
/// developer's `iex -S mix phx.server` in the project root) is `"ask"`ed about (attach to
/// it, or start Orrery's own copy), attached to (`"always"`), or ignored (`"never"`: Orrery
/// starts its own node, a second copy of the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachRunning {
    Ask,
    Always,
    Never,
}

/// `staticFeatures`: whether Orrery answers what a static Elixir language server
/// (Expert, ElixirLS, Lexical, Next LS) also answers: document and workspace symbols,
/// go to definition, completion, and the static parts of hovers (docs, namespaces).
/// `"off"` (or `false`) leaves those to the other server, so Orrery only answers live
/// things; `"on"` (or `true`) and `"auto"` keep them. The server cannot see other
/// servers: `"auto"` is resolved by the editor packages, which send `"off"` when another
/// Elixir server runs beside Orrery; unresolved, it means on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StaticFeatures {
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for StaticFeatures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(StaticFeatures::On),
            Raw::Bool(false) => Ok(StaticFeatures::Off),
            Raw::Text(t) => match t.as_str() {
                "auto" => Ok(StaticFeatures::Auto),
                "on" => Ok(StaticFeatures::On),
                "off" => Ok(StaticFeatures::Off),
                other => Err(serde::de::Error::custom(format!(
                    "staticFeatures: expected \"auto\", \"on\" or \"off\", got {other:?}"
                ))),
            },
        }
    }
}

/// Orrery's settings, with every field optional in the sources.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// `name@host` of the node to attach to; none means the embedded default.
    pub node: Option<String>,
    /// The cookie (never logged).
    #[serde(skip_serializing)]
    pub cookie: Option<String>,
    /// A file holding the cookie.
    pub cookie_file: Option<PathBuf>,
    /// Whether Orrery may change the node (hot swap, state replacement).
    pub allow_writes: Option<bool>,
    /// How often live values refresh, in milliseconds.
    pub refresh_ms: Option<u64>,
    /// Attach to the node's cluster peers too.
    pub attach_peers: Option<bool>,
    /// Inlay hint kinds.
    pub inlay_hints: Option<InlayHintConfig>,
    /// Compile timeout for hot swap, in milliseconds (default 15000).
    pub compile_timeout_ms: Option<u64>,
    /// Mean call times in def hovers and hints. Unset: on where the node has trace
    /// sessions (OTP 27+, Orrery's own session), off elsewhere (there it makes Orrery the
    /// tracer of every process that has none, so a tracer started later cannot trace those).
    pub live_call_time: Option<bool>,
    /// Static features (symbols, definition, completion, docs in hovers): see
    /// [`StaticFeatures`]. Unset: on.
    pub static_features: Option<StaticFeatures>,
    /// Embedded default: the mix task that serves the app (`"mix phx.server"`). Unset:
    /// `mix phx.server` in a Phoenix project, else `mix run --no-halt`.
    pub command: Option<String>,
    /// Embedded default: what to do when a node of this project already runs (see
    /// [`AttachRunning`]). Unset: ask.
    pub attach_running: Option<AttachRunning>,
}

impl Settings {
    /// Overlay `other` on `self`: fields set in `other` win.
    pub fn merge(mut self, other: Settings) -> Settings {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            node,
            cookie,
            cookie_file,
            allow_writes,
            refresh_ms,
            attach_peers,
            inlay_hints,
            compile_timeout_ms,
            live_call_time,
            static_features,
            command,
            attach_running
        );
        self
    }

    /// Parse from JSON (initializationOptions or workspace/configuration). Unknown fields
    /// are ignored; a wrong type is an error that names the field.
    pub fn from_json(v: &serde_json::Value) -> Result<Settings, String> {
        if v.is_null() {
            return Ok(Settings::default());
        }
        // Accept both `{orrery: {...}}` and `{...}`.
        let v = v.get("orrery").unwrap_or(v);
        serde_json::from_value(v.clone()).map_err(|e| format!("invalid Orrery settings: {e}"))
    }

    /// Read `.orrery.toml` in `root`, if present.
    pub fn from_toml_file(root: &Path) -> Result<Settings, String> {
        let path = root.join(".orrery.toml");
        match std::fs::read_to_string(&path) {
            Ok(s) => toml::from_str(&s).map_err(|e| format!("{}: {e}", path.display())),
            Err(_) => Ok(Settings::default()),
        }
    }

    /// Refresh interval, default 1000 ms, never below 100 ms.
    pub fn refresh_ms(&self) -> u64 {
        self.refresh_ms.unwrap_or(1000).max(100)
    }

    /// Whether writes are allowed: default true for nodes on this host, false otherwise.
    pub fn allow_writes(&self) -> bool {
        if let Some(a) = self.allow_writes {
            return a;
        }
        match &self.node {
            None => true,
            Some(n) => n
                .split_once('@')
                .map(|(_, h)| is_local_host(h))
                .unwrap_or(false),
        }
    }

    /// Compile timeout for hot swap.
    pub fn compile_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.compile_timeout_ms.unwrap_or(15_000).max(100))
    }

    /// Whether Orrery answers static requests (symbols, definition, completion) and puts
    /// static parts (docs, namespaces) in hovers: off only with `staticFeatures: "off"`.
    pub fn static_features(&self) -> bool {
        self.static_features != Some(StaticFeatures::Off)
    }

    /// The inlay hint kinds.
    pub fn inlay_hints(&self) -> InlayHintConfig {
        self.inlay_hints.clone().unwrap_or_default()
    }

    /// The cookie: `cookie`, else `cookieFile`, else `~/.erlang.cookie`.
    pub fn resolve_cookie(&self) -> Result<String, String> {
        if let Some(c) = &self.cookie {
            return Ok(c.trim().to_string());
        }
        let path = match &self.cookie_file {
            Some(p) => p.clone(),
            None => home_dir()
                .map(|h| h.join(".erlang.cookie"))
                .ok_or_else(|| {
                    "no cookie configured and no home directory: set `cookie` or `cookieFile`"
                        .to_string()
                })?,
        };
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                format!(
                    "cannot read the cookie file {}: {e}; set `cookie` or `cookieFile`",
                    path.display()
                )
            })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cookie is never printed.
        f.debug_struct("Settings")
            .field("node", &self.node)
            .field("cookie", &self.cookie.as_ref().map(|_| "<redacted>"))
            .field("cookie_file", &self.cookie_file)
            .field("allow_writes", &self.allow_writes)
            .field("refresh_ms", &self.refresh_ms)
            .field("attach_peers", &self.attach_peers)
            .field("inlay_hints", &self.inlay_hints)
            .field("compile_timeout_ms", &self.compile_timeout_ms)
            .field("live_call_time", &self.live_call_time)
            .field("static_features", &self.static_features)
            .field("command", &self.command)
            .field("attach_running", &self.attach_running)
            .finish()
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Whether `host` names this machine.
pub fn is_local_host(host: &str) -> bool {
    if matches!(host, "localhost" | "127.0.0.1" | "::1") {
        return true;
    }
    let me = local_hostname();
    me.as_deref() == Some(host) || me.as_deref().and_then(|m| m.split('.').next()) == Some(host)
}

/// This machine's short host name, as `erl -sname` uses it.
pub fn local_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let full = String::from_utf8_lossy(&buf[..end]).into_owned();
    Some(full.split('.').next().unwrap_or(&full).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_later_wins() {
        let a = Settings {
            node: Some("a@h".into()),
            refresh_ms: Some(500),
            ..Default::default()
        };
        let b = Settings {
            node: Some("b@h".into()),
            ..Default::default()
        };
        let m = a.merge(b);
        assert_eq!(m.node.as_deref(), Some("b@h"));
        assert_eq!(m.refresh_ms(), 500);
    }

    #[test]
    fn json_and_defaults() {
        let s = Settings::from_json(
            &serde_json::json!({"orrery": {"node": "kv@localhost", "refreshMs": 50}}),
        )
        .unwrap();
        assert_eq!(s.node.as_deref(), Some("kv@localhost"));
        assert_eq!(s.refresh_ms(), 100);
        assert!(s.allow_writes());
        let remote = Settings {
            node: Some("kv@far.example.com".into()),
            ..Default::default()
        };
        assert!(!remote.allow_writes());
        assert!(Settings::from_json(&serde_json::json!({"refreshMs": "x"})).is_err());
    }

    #[test]
    fn static_features_setting() {
        assert!(Settings::default().static_features());
        for (v, on) in [
            (serde_json::json!("off"), false),
            (serde_json::json!(false), false),
            (serde_json::json!("on"), true),
            (serde_json::json!(true), true),
            (serde_json::json!("auto"), true),
        ] {
            let s = Settings::from_json(&serde_json::json!({ "staticFeatures": v })).unwrap();
            assert_eq!(s.static_features(), on, "{v}");
        }
        assert!(Settings::from_json(&serde_json::json!({"staticFeatures": "maybe"})).is_err());
        let off: Settings = toml::from_str("staticFeatures = \"off\"").unwrap();
        assert!(!off.static_features());
        // A later source that does not set it keeps it.
        assert!(!off.merge(Settings::default()).static_features());
    }

    #[test]
    fn cookie_is_not_serialized() {
        let s = Settings {
            cookie: Some("secret".into()),
            ..Default::default()
        };
        assert!(!serde_json::to_string(&s).unwrap().contains("secret"));
        assert!(!format!("{s:?}").contains("secret"));
    }
}

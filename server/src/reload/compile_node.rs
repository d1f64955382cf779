//! The compile node: a hidden BEAM that Orrery starts (lazily, then kept warm) with the
//! project's code paths and its own random cookie. Compiles run there in a task with a
//! timeout; a crash, an infinite macro or an atom flood never reaches the user's node.

use crate::beam::term::{self, binary, charlist, list};
use crate::beam::{epmd, Connection};
use eetf::Term;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Child;

const HELPER: &str = include_str!("orrery_compiler.ex");
const HELPER_MODULE: &str = "Elixir.OrreryCompiler.V1";
const ERLC: &str = include_str!("orrery_erlc.ex");
const PROTOCOLS: &str = include_str!("orrery_protocols.ex");
const PROTOCOLS_MODULE: &str = "Elixir.OrreryCompiler.Protocols";
const INSTRUMENT: &str = include_str!("../debug/orrery_instrument.ex");
const INSTRUMENT_MODULE: &str = "Elixir.OrreryInstrument.V1";

/// An instrumented compile: binaries and, per module (atom name), the lines with probes.
#[derive(Debug, Clone)]
pub struct Instrumented {
    pub modules: Vec<(String, Vec<u8>)>,
    pub lines: std::collections::BTreeMap<String, Vec<u32>>,
}
/// The node halts when Orrery's end of its stdin closes.
const WATCHDOG: &str = "spawn(fn -> IO.read(:stdio, :line); System.halt(0) end)";

/// Severity of a diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A compiler message for a file and line (1-based line, 0 when unknown; column 1-based or 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    /// Where the compiler says the text it is about ends: 1-based line and column, the
    /// column one past its last character (Elixir 1.15+'s `span`), when it says so.
    pub end: Option<(u32, u32)>,
    pub severity: Severity,
    pub message: String,
}

/// What a compiled module is to Elixir's protocols.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// A `defprotocol`.
    Protocol,
    /// A `defimpl` of `protocol` (atom name) for `for_type` (atom name).
    Impl { protocol: String, for_type: String },
}

/// A protocol (atom name) to consolidate from `base` (its binary: as compiled, or
/// consolidated) over the types `base` dispatches to, `types`, and the impls in the build
/// and among `bins` (modules not in the build yet: this save's, named in `fresh`, and
/// earlier saves'); impls compiled from `sources` (the saved files) that are not in
/// `fresh` are gone from the source and left out.
pub struct Consolidation<'a> {
    pub protocol: &'a str,
    pub base: &'a [u8],
    pub types: &'a [String],
    pub bins: &'a [(String, Vec<u8>)],
    pub fresh: &'a [String],
    pub sources: &'a [PathBuf],
}

/// What a compile produced.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// Modules (atom names) and their binaries (the saved file's first, then its
    /// dependents'), plus warnings (and the errors of dependents that did not compile).
    Ok {
        modules: Vec<(String, Vec<u8>)>,
        warnings: Vec<Diagnostic>,
        /// Dependent files that did not compile against the new code, with the first error.
        stale: Vec<(PathBuf, String)>,
        /// The protocols and impls among `modules`.
        roles: Vec<(String, Role)>,
        /// The saved file's app's compile path (`_build/<env>/lib/<app>/ebin`).
        ebin: Option<PathBuf>,
    },
    /// Nothing to load.
    Failed {
        errors: Vec<Diagnostic>,
        warnings: Vec<Diagnostic>,
    },
    /// The compile did not finish in time (the compile node was restarted).
    TimedOut,
}

/// A running compile node.
pub struct CompileNode {
    pub node: String,
    conn: Connection,
    child: Child,
    /// Where its compiles write (private to this Orrery), removed at stop.
    out: PathBuf,
    /// The mix root it was set up in (its project, config and code paths).
    root: PathBuf,
}

/// How mix's own compile of the project went on the compile node.
#[derive(Debug, Clone, PartialEq)]
pub enum MixCompile {
    Done,
    /// It failed (errors elsewhere in the project, a crash), with why.
    Failed(String),
    /// It was stopped at the timeout.
    TimedOut,
}

/// The `MIX_ENV` compiles run in: `MIX_ENV` when set, else the first of dev, test, prod
/// that the project has a build of (dev when none).
pub fn mix_env(root: &Path) -> String {
    if let Ok(e) = std::env::var("MIX_ENV") {
        if !e.is_empty() {
            return e;
        }
    }
    ["dev", "test", "prod"]
        .into_iter()
        .find(|e| root.join("_build").join(e).is_dir())
        .unwrap_or("dev")
        .to_string()
}

/// A new directory only this user can enter, with an unpredictable name (created, never
/// reused: a path someone else made first is refused).
pub fn private_dir(prefix: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    for _ in 0..8 {
        let dir = base.join(format!(
            "{prefix}-{}",
            crate::managed::random_token(16).to_lowercase()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("could not create {}: {e}", dir.display())),
        }
    }
    Err("could not create a private directory".into())
}

/// `_build/<env>/lib/*/ebin` of the project (umbrella apps share `_build` at the root).
pub fn code_paths(root: &Path) -> Vec<PathBuf> {
    let env = root.join("_build").join(mix_env(root));
    if !env.is_dir() {
        return vec![];
    }
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(env.join("lib")) {
        for e in entries.flatten() {
            let ebin = e.path().join("ebin");
            if ebin.is_dir() {
                out.push(ebin);
            }
        }
    }
    out.sort();
    out
}

/// `{file, line, column, severity, message}`, or with a sixth element, the span
/// `{end_line, end_column}` or `nil`.
fn diagnostics(t: &Term) -> Vec<Diagnostic> {
    let n = |t: &Term| term::as_int(t).unwrap_or(0).max(0) as u32;
    term::list_ref(t)
        .iter()
        .filter_map(|d| {
            let (file, line, col, sev, msg, span) = match term::as_tuple(d)? {
                [file, line, col, sev, msg] => (file, line, col, sev, msg, None),
                [file, line, col, sev, msg, span] => (file, line, col, sev, msg, Some(span)),
                _ => return None,
            };
            Some(Diagnostic {
                file: PathBuf::from(term::as_string(file).unwrap_or_default()),
                line: n(line),
                column: n(col),
                end: span.and_then(term::as_tuple).and_then(|s| match s {
                    [l, c] => Some((n(l), n(c))).filter(|(l, c)| *l > 0 && *c > 0),
                    _ => None,
                }),
                severity: if term::is_atom(sev, "error") {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                message: term::as_string(msg).unwrap_or_default(),
            })
        })
        .collect()
}

fn binaries(mods: &Term) -> Vec<(String, Vec<u8>)> {
    term::list_ref(mods)
        .iter()
        .filter_map(|m| match term::as_tuple(m) {
            Some([Term::Atom(a), Term::Binary(b)]) => Some((a.name.clone(), b.bytes.clone())),
            _ => None,
        })
        .collect()
}

fn roles_of(t: &Term) -> Vec<(String, Role)> {
    term::list_ref(t)
        .iter()
        .filter_map(|r| match term::as_tuple(r)? {
            [m, role] => {
                let m = term::as_atom(m)?.to_string();
                if term::is_atom(role, "protocol") {
                    return Some((m, Role::Protocol));
                }
                match term::as_tuple(role)? {
                    [_, p, f] => Some((
                        m,
                        Role::Impl {
                            protocol: term::as_atom(p)?.to_string(),
                            for_type: term::as_atom(f)?.to_string(),
                        },
                    )),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

impl CompileNode {
    /// Start a compile node for the project at `root`.
    pub async fn start(root: &Path) -> Result<CompileNode, String> {
        let host = crate::config::local_hostname().unwrap_or_else(|| "localhost".into());
        let short = format!(
            "orrery_cc_{}",
            crate::managed::random_token(8).to_lowercase()
        );
        let node = format!("{short}@{host}");
        let cookie = crate::managed::random_token(20);
        crate::private::ensure_epmd(&host).await;
        let mut cmd = crate::private::elixir_node(&short, &cookie, true);
        cmd.args(["--no-halt", "-e", WATCHDOG])
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("could not start the compile node (`elixir`): {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let conn = loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("the compile node exited during start ({st})"));
            }
            if epmd::port_of(&short, &host).await.is_ok() {
                if let Ok(c) = Connection::connect(&node, &cookie, Duration::from_secs(5)).await {
                    break c;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill().await;
                return Err("the compile node did not start within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let t = Duration::from_secs(30);
        let paths: Vec<Term> = code_paths(root)
            .iter()
            .map(|p| charlist(&p.to_string_lossy()))
            .collect();
        conn.rpc("code", "add_pathsz", vec![list(paths)], t)
            .await
            .map_err(|e| e.to_string())?;
        // The node is in EPMD before Elixir has booted: retry until the compiler answers.
        loop {
            match conn
                .rpc("Elixir.Code", "compile_string", vec![binary(HELPER)], t)
                .await
            {
                Ok(_) => {
                    for (what, src) in [
                        ("the Erlang compiler helper", ERLC),
                        ("the protocol helper", PROTOCOLS),
                        ("the instrumenter", INSTRUMENT),
                    ] {
                        conn.rpc("Elixir.Code", "compile_string", vec![binary(src)], t)
                            .await
                            .map_err(|e| format!("could not load {what}: {e}"))?;
                    }
                    break;
                }
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(format!("could not load the compiler helper: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        // The project's compile environment: Mix, its config, its deps' code paths.
        let out = private_dir("orrery-cc")?;
        let env = mix_env(root);
        let setup = conn
            .rpc(
                HELPER_MODULE,
                "setup",
                vec![
                    binary(&root.to_string_lossy()),
                    binary(&env),
                    binary(&out.to_string_lossy()),
                ],
                Duration::from_secs(60),
            )
            .await
            .map_err(|e| e.to_string())?;
        if !term::is_atom(&setup, "ok") {
            let why = term::as_tuple(&setup)
                .and_then(|t| t.get(1))
                .and_then(term::as_string)
                .unwrap_or_else(|| format!("{setup:?}"));
            let _ = std::fs::remove_dir_all(&out);
            let _ = child.kill().await;
            return Err(format!(
                "could not load the project's mix environment (MIX_ENV={env}) on the compile node: {why}"
            ));
        }
        Ok(CompileNode {
            node,
            conn,
            child,
            out,
            root: root.to_path_buf(),
        })
    }

    /// The mix root it compiles for.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the node is still there.
    pub fn alive(&self) -> bool {
        self.conn.down_reason().is_none()
    }

    /// Compile `file` (its saved contents) with a timeout.
    pub async fn compile(&mut self, file: &Path, timeout: Duration) -> Result<Compiled, String> {
        self.compile_stages(&[vec![file.to_path_buf()]], timeout)
            .await
    }

    /// Compile the first stage (the saved file), then each later stage of dependent files
    /// (users of the previous stage's macros and structs) against the new code, one
    /// timeout for all. A dependent that does not compile is reported in `stale`.
    pub async fn compile_stages(
        &mut self,
        stages: &[Vec<PathBuf>],
        timeout: Duration,
    ) -> Result<Compiled, String> {
        let stages: Vec<Term> = stages
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| list(s.iter().map(|f| binary(&f.to_string_lossy())).collect()))
            .collect();
        if stages.is_empty() {
            return Err("nothing to compile".into());
        }
        let reply = self
            .conn
            .rpc(
                HELPER_MODULE,
                "compile_stages",
                vec![list(stages), term::int(timeout.as_millis() as i64)],
                timeout + Duration::from_secs(10),
            )
            .await
            .map_err(|e| e.to_string())?;
        if term::is_atom(&reply, "timeout") {
            return Ok(Compiled::TimedOut);
        }
        match term::as_tuple(&reply) {
            Some([ok, mods, warnings, stale, roles, ebin]) if term::is_atom(ok, "ok") => {
                let modules = binaries(mods);
                let stale = term::list_ref(stale)
                    .iter()
                    .filter_map(|s| match term::as_tuple(s) {
                        Some([f, why]) => Some((
                            PathBuf::from(term::as_string(f)?),
                            term::as_string(why).unwrap_or_default(),
                        )),
                        _ => None,
                    })
                    .collect();
                Ok(Compiled::Ok {
                    modules,
                    warnings: diagnostics(warnings),
                    stale,
                    roles: roles_of(roles),
                    ebin: match ebin {
                        Term::Binary(b) => Some(PathBuf::from(
                            String::from_utf8_lossy(&b.bytes).into_owned(),
                        )),
                        _ => None,
                    },
                })
            }
            Some([err, errors, warnings]) if term::is_atom(err, "error") => Ok(Compiled::Failed {
                errors: diagnostics(errors),
                warnings: diagnostics(warnings),
            }),
            _ => Err(format!(
                "unexpected answer from the compile node: {reply:?}"
            )),
        }
    }

    /// Compile `file` with debugger probes.
    pub async fn instrument(
        &mut self,
        file: &Path,
        timeout: Duration,
    ) -> Result<Instrumented, String> {
        let reply = self
            .conn
            .rpc(
                INSTRUMENT_MODULE,
                "compile",
                vec![
                    binary(&file.to_string_lossy()),
                    term::int(timeout.as_millis() as i64),
                ],
                timeout + Duration::from_secs(10),
            )
            .await
            .map_err(|e| e.to_string())?;
        if term::is_atom(&reply, "timeout") {
            return Err(format!("instrumenting {} timed out", file.display()));
        }
        match term::as_tuple(&reply) {
            Some([ok, mods, lines, _]) if term::is_atom(ok, "ok") => {
                let modules = binaries(mods);
                let mut out = std::collections::BTreeMap::new();
                if let Term::Map(m) = lines {
                    for (k, v) in &m.map {
                        if let Some(name) = term::as_atom(k) {
                            let ls = term::as_list(v)
                                .unwrap_or_default()
                                .iter()
                                .filter_map(term::as_int)
                                .map(|l| l as u32)
                                .collect();
                            out.insert(name.to_string(), ls);
                        }
                    }
                }
                Ok(Instrumented {
                    modules,
                    lines: out,
                })
            }
            Some([err, errors, _]) if term::is_atom(err, "error") => {
                let msgs: Vec<String> = diagnostics(errors)
                    .into_iter()
                    .map(|d| format!("line {}: {}", d.line, d.message))
                    .collect();
                Err(format!(
                    "{} does not compile: {}",
                    file.display(),
                    msgs.join("; ")
                ))
            }
            _ => Err(format!(
                "unexpected answer from the compile node: {reply:?}"
            )),
        }
    }

    /// A protocol consolidated as mix's `compile.protocols` builds it (see
    /// [`Consolidation`]).
    pub async fn consolidate(
        &self,
        c: &Consolidation<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let bin = |b: &[u8]| Term::Binary(eetf::Binary::from(b.to_vec()));
        let atoms = |l: &[String]| list(l.iter().map(|t| term::atom(t)).collect());
        let reply = self
            .conn
            .rpc(
                PROTOCOLS_MODULE,
                "consolidate",
                vec![
                    term::atom(c.protocol),
                    bin(c.base),
                    atoms(c.types),
                    list(
                        c.bins
                            .iter()
                            .map(|(m, b)| term::tuple(vec![term::atom(m), bin(b)]))
                            .collect(),
                    ),
                    atoms(c.fresh),
                    list(
                        c.sources
                            .iter()
                            .map(|f| binary(&f.to_string_lossy()))
                            .collect(),
                    ),
                ],
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        match term::as_tuple(&reply) {
            Some([ok, Term::Binary(b)]) if term::is_atom(ok, "ok") => Ok(b.bytes.clone()),
            Some([_, why]) => Err(term::as_string(why).unwrap_or_else(|| format!("{why:?}"))),
            _ => Err(format!(
                "unexpected answer from the compile node: {reply:?}"
            )),
        }
    }

    /// Bring `_build` up to the sources on disk with mix's own compile (see
    /// [`super::build`]).
    pub async fn sync_build(&self, timeout: Duration) -> Result<MixCompile, String> {
        let reply = self
            .conn
            .rpc(
                HELPER_MODULE,
                "sync_build",
                vec![term::int(timeout.as_millis() as i64)],
                timeout + Duration::from_secs(10),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(if term::is_atom(&reply, "ok") {
            MixCompile::Done
        } else if term::is_atom(&reply, "timeout") {
            MixCompile::TimedOut
        } else {
            MixCompile::Failed(
                term::as_tuple(&reply)
                    .and_then(|t| t.get(1))
                    .and_then(term::as_string)
                    .unwrap_or_else(|| format!("{reply:?}")),
            )
        })
    }

    /// Whether a beam is a protocol (`defprotocol`).
    pub async fn is_protocol(&self, bin: &[u8]) -> bool {
        self.conn
            .rpc(
                PROTOCOLS_MODULE,
                "protocol?",
                vec![Term::Binary(eetf::Binary::from(bin.to_vec()))],
                Duration::from_secs(10),
            )
            .await
            .is_ok_and(|r| term::is_atom(&r, "true"))
    }

    /// The module md5 of a beam (`beam_lib:md5/1`: the code, not the metadata).
    pub async fn beam_md5(&self, bin: &[u8]) -> Option<Vec<u8>> {
        let r = self
            .conn
            .rpc(
                "beam_lib",
                "md5",
                vec![Term::Binary(eetf::Binary::from(bin.to_vec()))],
                Duration::from_secs(10),
            )
            .await
            .ok()?;
        match term::as_tuple(&r) {
            Some([ok, inner]) if term::is_atom(ok, "ok") => match term::as_tuple(inner) {
                Some([_, Term::Binary(b)]) => Some(b.bytes.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Why a module binary must not be hot-swapped (NIFs, `@on_load`), if so.
    pub async fn unsafe_reason(&self, bin: &[u8]) -> Option<&'static str> {
        let r = self
            .conn
            .rpc(
                HELPER_MODULE,
                "unsafe",
                vec![Term::Binary(eetf::Binary::from(bin.to_vec()))],
                Duration::from_secs(10),
            )
            .await
            .ok()?;
        match term::as_atom(&r) {
            Some("nif") => Some("it loads NIFs"),
            Some("on_load") => Some("it has an @on_load hook"),
            _ => None,
        }
    }

    /// Stop the node.
    pub async fn stop(mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
        self.conn.close();
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            if let Some(pid) = self.child.id() {
                // SAFETY: signalling our own child's process group.
                unsafe {
                    libc::killpg(pid as i32, libc::SIGKILL);
                }
            }
            let _ = self.child.wait().await;
        }
    }
}

impl Drop for CompileNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

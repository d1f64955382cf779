//! The language server: a thin mapping from LSP onto [`crate::core::Core`].
//! No BEAM logic lives here.

mod commands;
mod completion;
mod convert;
mod custom;
mod features;
mod guard;
mod reload;
mod statics;
mod test_lenses;

use crate::config::{AttachRunning, Settings};
use crate::core::{normalize, Core};
use crate::workspace::documents::Pos;
use convert::to_path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

/// The answer to "a node of this project already runs" that starts Orrery's own node.
const OWN_NODE: &str = "Start Orrery's own node";

/// The LSP backend: the client handle and the workspace core.
pub struct Backend {
    client: Client,
    core: Arc<Core>,
    supports_progress: AtomicBool,
    supports_config: AtomicBool,
    supports_refresh: AtomicBool,
    shut_down: AtomicBool,
    /// The static features and their dynamic registrations (`staticFeatures`).
    statics: Arc<statics::Statics>,
    /// The long-lived twin that runs background work (refresh loop, saves).
    background: std::sync::Mutex<Option<Arc<Backend>>>,
    /// Files with diagnostics from each saved file's last compile.
    diagnosed: std::sync::Mutex<
        std::collections::HashMap<
            std::path::PathBuf,
            std::collections::BTreeSet<std::path::PathBuf>,
        >,
    >,
}

/// Serve LSP on stdin/stdout until the client exits or stdin closes; then leave the
/// nodes as found and stop a managed node.
pub async fn serve_stdio() {
    let core = Arc::new(Core::new());
    let core2 = core.clone();
    let (service, socket) = LspService::build(move |client| Backend {
        client,
        core: core2.clone(),
        supports_progress: AtomicBool::new(false),
        supports_config: AtomicBool::new(false),
        supports_refresh: AtomicBool::new(false),
        shut_down: AtomicBool::new(false),
        statics: Default::default(),
        background: Default::default(),
        diagnosed: Default::default(),
    })
    .custom_method("orrery/status", Backend::status)
    .custom_method("orrery/processes", Backend::processes)
    .custom_method("orrery/state", Backend::state)
    .custom_method("orrery/ets", Backend::ets)
    .custom_method("orrery/supervisionTree", Backend::supervision_tree)
    .finish();
    let (guarded, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, replies) = tokio::io::duplex(1 << 20);
    let (errors_tx, errors_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(guard::pump_in(tokio::io::stdin(), guarded, errors_tx));
    let out = tokio::spawn(guard::pump_out(replies, tokio::io::stdout(), errors_rx));
    Server::new(server_in, server_out, socket)
        .serve(service)
        .await;
    // Everything the server wrote reaches stdout before we go.
    let _ = tokio::time::timeout(Duration::from_secs(2), out).await;
    // The client went away (exit, or the editor died and closed our stdin).
    core.shutdown().await;
}

impl Backend {
    async fn log(&self, typ: MessageType, msg: impl std::fmt::Display) {
        self.client.log_message(typ, msg).await;
    }

    async fn progress_begin(&self, title: &str) -> Option<ProgressToken> {
        if !self.supports_progress.load(Ordering::Relaxed) {
            return None;
        }
        let token = ProgressToken::String(format!("orrery/{}/{}", title, rand::random::<u32>()));
        self.client
            .create_work_done_progress(token.clone())
            .await
            .ok()?;
        self.client
            .send_notification::<notification::Progress>(ProgressParams {
                token: token.clone(),
                value: ProgressParamsValue::WorkDone(WorkDoneProgress::Begin(
                    WorkDoneProgressBegin {
                        title: title.to_string(),
                        cancellable: Some(false),
                        message: None,
                        percentage: None,
                    },
                )),
            })
            .await;
        Some(token)
    }

    async fn progress_end(&self, token: Option<ProgressToken>, message: String) {
        if let Some(token) = token {
            self.client
                .send_notification::<notification::Progress>(ProgressParams {
                    token,
                    value: ProgressParamsValue::WorkDone(WorkDoneProgress::End(
                        WorkDoneProgressEnd {
                            message: Some(message),
                        },
                    )),
                })
                .await;
        }
    }

    /// Index, then attach (in the background of `initialized`).
    async fn start(self: Arc<Self>) {
        let p = self.progress_begin("Indexing").await;
        let core = self.core.clone();
        let n = tokio::task::spawn_blocking(move || core.index_workspace())
            .await
            .unwrap_or(0);
        self.progress_end(p, format!("{n} files")).await;
        self.log(
            MessageType::INFO,
            format!("Orrery indexed {n} Elixir files"),
        )
        .await;

        self.attach_now().await;
        self.clone().watch_session();
        self.clone().watch_files();
        self.refresh_loop().await;
    }

    /// Attach as the settings say, with progress; failures are shown to the user.
    async fn attach_now(self: &Arc<Self>) {
        let p = self.progress_begin("Attaching").await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                me.log(MessageType::LOG, format!("[app] {line}")).await;
            }
        });
        let found = self.choose_running_copy().await;
        match self.core.attach(tx, found).await {
            Ok(node) => {
                self.progress_end(p, format!("attached to {node}")).await;
                self.log(MessageType::INFO, format!("Orrery attached to {node}"))
                    .await;
            }
            Err(e) => {
                self.progress_end(p, "not attached".into()).await;
                self.client
                    .show_message(MessageType::ERROR, format!("Orrery: {e}"))
                    .await;
            }
        }
    }

    /// With no `node` set and a node of this project already running (someone's `iex -S
    /// mix phx.server`): attach to it rather than start a second copy of the app, as
    /// `attachRunning` says (unset: ask; a dismissed question attaches to it).
    async fn choose_running_copy(&self) -> Option<String> {
        let copies = self.core.running_copies().await;
        let first = copies.first()?;
        let describe = |c: &crate::managed::running::RunningCopy| {
            let runs = c
                .runs
                .as_deref()
                .map(|r| format!(", `{r}`"))
                .unwrap_or_default();
            format!("{} (OS pid {}{runs})", c.node, c.pid)
        };
        let all: Vec<String> = copies.iter().map(describe).collect();
        let policy = self
            .core
            .settings()
            .attach_running
            .unwrap_or(AttachRunning::Ask);
        let chosen = match policy {
            AttachRunning::Never => None,
            AttachRunning::Always => Some(first.node.clone()),
            AttachRunning::Ask => {
                let mut actions: Vec<MessageActionItem> = copies
                    .iter()
                    .take(3)
                    .map(|c| MessageActionItem {
                        title: format!("Attach to {}", c.node),
                        properties: Default::default(),
                    })
                    .collect();
                actions.push(MessageActionItem {
                    title: OWN_NODE.into(),
                    properties: Default::default(),
                });
                let msg = format!(
                    "Orrery: {} already {} this project. Attach instead of starting a second                      copy of the app? (Setting `attachRunning`: \"always\" or \"never\"                      decides without asking.)",
                    all.join(", "),
                    if all.len() == 1 { "runs" } else { "run" }
                );
                match self
                    .client
                    .show_message_request(MessageType::INFO, msg, Some(actions))
                    .await
                {
                    Ok(Some(item)) => item.title.strip_prefix("Attach to ").map(str::to_string),
                    // Dismissed: attaching changes nothing the detach does not undo; a
                    // second copy would serve the same ports and data.
                    _ => Some(first.node.clone()),
                }
            }
        };
        let said = match &chosen {
            Some(n) => format!("Orrery: attaching to {n}, which already runs this project"),
            None => format!(
                "Orrery: {} already running this project; starting Orrery's own node anyway",
                all.join(", ")
            ),
        };
        self.log(MessageType::INFO, said).await;
        chosen
    }

    /// The node or cookie changed in the settings: leave the node and attach again.
    async fn reattach(self: Arc<Self>) {
        if self.core.debug_sessions.load(Ordering::Relaxed) > 0 {
            self.client
                .show_message(
                    MessageType::WARNING,
                    "Orrery: the node settings changed; end the debug session running on this \
                     connection, then reload the window to attach with them",
                )
                .await;
            return;
        }
        self.log(
            MessageType::INFO,
            "Orrery: node settings changed; re-attaching".to_string(),
        )
        .await;
        self.core.detach().await;
        self.attach_now().await;
        self.clone().watch_session();
        self.refresh_clients().await;
    }

    /// Tell the user when the node goes away and comes back.
    fn watch_session(self: Arc<Self>) {
        let Some(session) = self.core.session() else {
            return;
        };
        let mut events = session.events();
        // The nodes attached before we listened: their incarnations count as seen.
        let now: Vec<_> = session.nodes().into_iter().map(|n| n.info).collect();
        self.core.attached(&now);
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                match ev {
                    crate::attach::Event::Attached(nodes) => {
                        self.core.attached(&nodes);
                        let names: Vec<_> = nodes.iter().map(|n| n.name.clone()).collect();
                        self.log(
                            MessageType::INFO,
                            format!("Orrery attached to {}", names.join(", ")),
                        )
                        .await;
                    }
                    crate::attach::Event::Detached(reason) => {
                        self.core.live.clear();
                        self.client
                            .show_message(MessageType::WARNING, format!("Orrery detached: {reason}. Re-attaching when the node is back."))
                            .await;
                        self.refresh_clients().await;
                    }
                }
            }
        });
    }

    /// Files changed outside the editor (say by `git checkout`) are compiled and swapped
    /// like a save; files open in the editor are left to `didSave`.
    fn watch_files(self: Arc<Self>) {
        let Some(root) = self.core.mix_root() else {
            return;
        };
        let (watcher, mut rx) = match crate::workspace::watch::watch(&root) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("not watching {} for changes: {e}", root.display());
                return;
            }
        };
        tokio::spawn(async move {
            let _keep = watcher;
            while let Some(batch) = rx.recv().await {
                for path in batch {
                    let path = normalize(&path);
                    let open = self
                        .core
                        .docs
                        .read()
                        .map(|d| d.contains_key(&path))
                        .unwrap_or(true);
                    if open || self.shut_down.load(Ordering::Relaxed) {
                        continue;
                    }
                    self.core.reindex(&path);
                    self.on_saved(path).await;
                }
            }
        });
    }

    async fn refresh_clients(&self) {
        if self.supports_refresh.load(Ordering::Relaxed) && !self.shut_down.load(Ordering::Relaxed)
        {
            let _ = self.client.inlay_hint_refresh().await;
            let _ = self.client.code_lens_refresh().await;
        }
    }

    async fn refresh_loop(&self) {
        loop {
            if self.shut_down.load(Ordering::Relaxed) {
                return;
            }
            if self.core.refresh_live().await {
                self.refresh_clients().await;
            }
            let ms = self.core.settings().refresh_ms();
            // Sleep until the next tick, or until a document opens and wants values now.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = self.core.refresh_now.notified() => {}
            }
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .and_then(|f| to_path(&f.uri));
        #[allow(deprecated)]
        let root = root.or_else(|| params.root_uri.as_ref().and_then(to_path));
        let mut settings = Settings::default();
        if let Some(r) = &root {
            match Settings::from_toml_file(r) {
                Ok(s) => settings = settings.merge(s),
                Err(e) => self.log(MessageType::ERROR, e).await,
            }
        }
        if let Some(opts) = &params.initialization_options {
            match Settings::from_json(opts) {
                Ok(s) => settings = settings.merge(s),
                Err(e) => self.log(MessageType::ERROR, e).await,
            }
        }
        if let Ok(mut r) = self.core.root.write() {
            *r = root.map(|p| normalize(&p));
        }
        let statics_on = settings.static_features();
        if let Ok(mut s) = self.core.settings.write() {
            *s = settings;
        }
        let caps = &params.capabilities;
        self.supports_progress.store(
            caps.window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false),
            Ordering::Relaxed,
        );
        self.supports_config.store(
            caps.workspace
                .as_ref()
                .and_then(|w| w.configuration)
                .unwrap_or(false),
            Ordering::Relaxed,
        );
        let ws = caps.workspace.as_ref();
        self.supports_refresh.store(
            ws.and_then(|w| w.inlay_hint.as_ref())
                .and_then(|i| i.refresh_support)
                .unwrap_or(false)
                || ws
                    .and_then(|w| w.code_lens.as_ref())
                    .and_then(|c| c.refresh_support)
                    .unwrap_or(false),
            Ordering::Relaxed,
        );
        let mut capabilities = ServerCapabilities {
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                    ..Default::default()
                },
            )),
            hover_provider: Some(HoverProviderCapability::Simple(true)),
            // Symbols, definition and completion: `statics::Statics::announce`.
            inlay_hint_provider: Some(OneOf::Left(true)),
            code_lens_provider: Some(CodeLensOptions {
                resolve_provider: Some(false),
            }),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: commands::COMMANDS
                    .iter()
                    .chain(reload::COMMANDS)
                    .map(|c| c.to_string())
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.statics
            .announce(&params.capabilities, statics_on, &mut capabilities);
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "orrery".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities,
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        if self.supports_config.load(Ordering::Relaxed) {
            let items = vec![ConfigurationItem {
                scope_uri: None,
                section: Some("orrery".into()),
            }];
            if let Ok(values) = self.client.configuration(items).await {
                if let Some(v) = values.first() {
                    match Settings::from_json(v) {
                        Ok(s) => {
                            if let Ok(mut cur) = self.core.settings.write() {
                                *cur = cur.clone().merge(s);
                            }
                        }
                        Err(e) => self.log(MessageType::ERROR, e).await,
                    }
                }
            }
        }
        self.statics
            .sync(&self.client, self.core.settings().static_features())
            .await;
        let me = Arc::new(Backend {
            client: self.client.clone(),
            core: self.core.clone(),
            supports_progress: AtomicBool::new(self.supports_progress.load(Ordering::Relaxed)),
            supports_config: AtomicBool::new(false),
            supports_refresh: AtomicBool::new(self.supports_refresh.load(Ordering::Relaxed)),
            shut_down: AtomicBool::new(false),
            statics: self.statics.clone(),
            background: Default::default(),
            diagnosed: Default::default(),
        });
        *self.background.lock().unwrap_or_else(|e| e.into_inner()) = Some(me.clone());
        // `orrery dap` of this workspace can run its session on our connection.
        if let Some(root) = self.core.mix_root() {
            if let Some(l) = crate::dap::bridge::listen(self.core.clone(), &root) {
                if let Ok(mut b) = self.core.bridge.lock() {
                    *b = Some(Box::new(l));
                }
            }
        }
        tokio::spawn(me.start());
    }

    async fn shutdown(&self) -> Result<()> {
        self.shut_down.store(true, Ordering::Relaxed);
        if let Some(bg) = self.background.lock().ok().and_then(|b| b.clone()) {
            bg.shut_down.store(true, Ordering::Relaxed);
        }
        self.core.shutdown().await;
        Ok(())
    }

    async fn did_open(&self, p: DidOpenTextDocumentParams) {
        if let Some(path) = to_path(&p.text_document.uri) {
            let size = p.text_document.text.len();
            let indexed = self.core.open(
                normalize(&path),
                &p.text_document.text,
                p.text_document.version,
            );
            if !indexed {
                let msg = format!(
                    "Orrery: {} is {:.1} MB, over the {} MB indexing limit: it is tracked but \
                     not indexed (no symbols, hovers or live values in it)",
                    path.display(),
                    size as f64 / 1e6,
                    crate::workspace::index::MAX_INDEXED / (1024 * 1024)
                );
                self.client.show_message(MessageType::WARNING, msg).await;
            }
        }
    }

    async fn did_change(&self, p: DidChangeTextDocumentParams) {
        if let Some(path) = to_path(&p.text_document.uri) {
            let changes = p
                .content_changes
                .into_iter()
                .map(|c| {
                    let range = c.range.map(|r| {
                        (
                            Pos {
                                line: r.start.line,
                                utf16: r.start.character,
                            },
                            Pos {
                                line: r.end.line,
                                utf16: r.end.character,
                            },
                        )
                    });
                    (range, c.text)
                })
                .collect();
            self.core
                .change(&normalize(&path), changes, p.text_document.version);
        }
    }

    async fn did_save(&self, p: DidSaveTextDocumentParams) {
        let Some(path) = to_path(&p.text_document.uri) else {
            return;
        };
        // Elixir (`.ex`) and Erlang sources (`.erl`, and `.hrl` through the sources that
        // include it); scripts and anything else are not compiled.
        if !crate::workspace::erlang::swappable(&path) {
            return;
        }
        // Compile and swap in the background; the client is not kept waiting, and a burst
        // of saves of one file is one compile and swap.
        if let Some(me) = self.background.lock().ok().and_then(|b| b.clone()) {
            self.core.saves.kick(normalize(&path), move |p| {
                let me = me.clone();
                async move { me.on_saved(p).await }
            });
        }
    }

    async fn did_close(&self, p: DidCloseTextDocumentParams) {
        if let Some(path) = to_path(&p.text_document.uri) {
            self.core.close(&normalize(&path));
        }
    }

    async fn did_change_configuration(&self, p: DidChangeConfigurationParams) {
        match Settings::from_json(&p.settings) {
            Ok(s) => {
                let target = |s: &Settings| {
                    (
                        (s.node.clone(), s.cookie.clone(), s.cookie_file.clone()),
                        (s.command.clone(), s.attach_running),
                    )
                };
                let Some((changed, statics_before, statics_now)) =
                    self.core.settings.write().ok().map(|mut cur| {
                        let before = (target(&cur), cur.static_features());
                        *cur = cur.clone().merge(s);
                        (target(&cur) != before.0, before.1, cur.static_features())
                    })
                else {
                    return;
                };
                if statics_now != statics_before {
                    self.statics.sync(&self.client, statics_now).await;
                }
                if changed {
                    if let Some(me) = self.background.lock().ok().and_then(|b| b.clone()) {
                        tokio::spawn(me.reattach());
                    }
                }
            }
            Err(e) => self.log(MessageType::ERROR, e).await,
        }
    }

    async fn hover(&self, p: HoverParams) -> Result<Option<Hover>> {
        Ok(features::hover(&self.core, p).await)
    }

    async fn completion(&self, p: CompletionParams) -> Result<Option<CompletionResponse>> {
        if !self.core.settings().static_features() {
            return Ok(None);
        }
        Ok(completion::complete(&self.core, p).await)
    }

    async fn goto_definition(
        &self,
        p: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        if !self.core.settings().static_features() {
            return Ok(None);
        }
        let (resp, note) = features::definition(&self.core, p).await;
        if let Some(note) = note {
            self.client.show_message(MessageType::INFO, note).await;
        }
        Ok(resp)
    }

    async fn document_symbol(
        &self,
        p: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        if !self.core.settings().static_features() {
            return Ok(None);
        }
        Ok(features::document_symbols(&self.core, &p.text_document.uri))
    }

    async fn symbol(&self, p: WorkspaceSymbolParams) -> Result<Option<WorkspaceSymbolResponse>> {
        if !self.core.settings().static_features() {
            return Ok(None);
        }
        Ok(features::workspace_symbols(&self.core, &p.query))
    }

    async fn inlay_hint(&self, p: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        Ok(features::inlay_hints(
            &self.core,
            &p.text_document.uri,
            p.range,
        ))
    }

    async fn code_lens(&self, p: CodeLensParams) -> Result<Option<Vec<CodeLens>>> {
        let mut lenses = features::code_lenses(&self.core, &p.text_document.uri);
        if let Some(path) = convert::to_path(&p.text_document.uri) {
            let tests = test_lenses::lenses(&self.core, &crate::core::normalize(&path));
            if !tests.is_empty() {
                lenses.get_or_insert_with(Vec::new).extend(tests);
            }
        }
        Ok(lenses)
    }

    async fn execute_command(&self, p: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        match p.command.as_str() {
            "orrery.status" => Ok(Some(self.core.status_json().await)),
            "orrery.inspectState" => {
                let target = p.arguments.first().cloned().unwrap_or_default();
                custom::state_of(&self.core, target).await.map(Some)
            }
            c if reload::COMMANDS.contains(&c) => self.reload_command(c, &p.arguments).await,
            _ => commands::execute(self, p).await,
        }
    }
}

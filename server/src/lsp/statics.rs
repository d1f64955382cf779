//! Orrery's static features (document and workspace symbols, go to definition,
//! completion) and the `staticFeatures` setting that turns them off, so that Orrery
//! runs beside a static Elixir language server (Expert, ElixirLS, Lexical, Next LS)
//! and answers only live things.
//!
//! Capabilities are honest per request: a feature whose client supports dynamic
//! registration is not announced in `initialize`; it is registered after `initialized`
//! when the settings (`.orrery.toml`, `initializationOptions`, then
//! `workspace/configuration`) leave it on, and registered or unregistered when
//! `didChangeConfiguration` changes the setting. A client without dynamic registration
//! gets it in `initialize`'s capabilities as the first two settings sources say; a
//! request for a feature turned off later is answered with `null`.

use std::collections::BTreeSet;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::Client;

/// One static feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    Definition,
    DocumentSymbol,
    WorkspaceSymbol,
    Completion,
}

const ALL: [Feature; 4] = [
    Feature::Definition,
    Feature::DocumentSymbol,
    Feature::WorkspaceSymbol,
    Feature::Completion,
];

/// Completion triggers (after `Mod.` and `:`).
pub const TRIGGERS: [&str; 2] = [".", ":"];

impl Feature {
    fn method(self) -> &'static str {
        match self {
            Feature::Definition => "textDocument/definition",
            Feature::DocumentSymbol => "textDocument/documentSymbol",
            Feature::WorkspaceSymbol => "workspace/symbol",
            Feature::Completion => "textDocument/completion",
        }
    }

    fn id(self) -> String {
        format!("orrery-static-{}", self.method())
    }

    fn options(self) -> serde_json::Value {
        // A `null` document selector means the client's own (the editor's Elixir buffers).
        match self {
            Feature::WorkspaceSymbol => serde_json::json!({}),
            Feature::Completion => {
                serde_json::json!({"documentSelector": null, "triggerCharacters": TRIGGERS})
            }
            _ => serde_json::json!({"documentSelector": null}),
        }
    }

    /// Whether the client can register this feature dynamically.
    fn dynamic(self, caps: &ClientCapabilities) -> bool {
        let td = caps.text_document.as_ref();
        match self {
            Feature::Definition => td
                .and_then(|t| t.definition.as_ref())
                .and_then(|d| d.dynamic_registration),
            Feature::DocumentSymbol => td
                .and_then(|t| t.document_symbol.as_ref())
                .and_then(|d| d.dynamic_registration),
            Feature::Completion => td
                .and_then(|t| t.completion.as_ref())
                .and_then(|d| d.dynamic_registration),
            Feature::WorkspaceSymbol => caps
                .workspace
                .as_ref()
                .and_then(|w| w.symbol.as_ref())
                .and_then(|s| s.dynamic_registration),
        }
        .unwrap_or(false)
    }
}

/// Which static features the client registers dynamically, and which are registered.
#[derive(Default)]
pub struct Statics {
    dynamic: std::sync::Mutex<BTreeSet<Feature>>,
    registered: tokio::sync::Mutex<BTreeSet<Feature>>,
}

impl Statics {
    /// At `initialize`: note what the client registers dynamically, and put the others
    /// into `server` as `on` says.
    pub fn announce(&self, client: &ClientCapabilities, on: bool, server: &mut ServerCapabilities) {
        let dynamic: BTreeSet<Feature> = ALL.into_iter().filter(|f| f.dynamic(client)).collect();
        for f in ALL {
            if dynamic.contains(&f) || !on {
                continue;
            }
            match f {
                Feature::Definition => server.definition_provider = Some(OneOf::Left(true)),
                Feature::DocumentSymbol => {
                    server.document_symbol_provider = Some(OneOf::Left(true))
                }
                Feature::WorkspaceSymbol => {
                    server.workspace_symbol_provider = Some(OneOf::Left(true))
                }
                Feature::Completion => {
                    server.completion_provider = Some(CompletionOptions {
                        trigger_characters: Some(TRIGGERS.iter().map(|t| t.to_string()).collect()),
                        ..Default::default()
                    })
                }
            }
        }
        if let Ok(mut d) = self.dynamic.lock() {
            *d = dynamic;
        }
    }

    /// Register or unregister the dynamically registered features so that they are
    /// registered exactly when `on`. Called after `initialized` and on settings changes.
    pub async fn sync(&self, client: &Client, on: bool) {
        let dynamic = self.dynamic.lock().map(|d| d.clone()).unwrap_or_default();
        if dynamic.is_empty() {
            return;
        }
        let mut registered = self.registered.lock().await;
        let want: BTreeSet<Feature> = if on { dynamic } else { BTreeSet::new() };
        let add: Vec<Feature> = want.difference(&registered).copied().collect();
        let remove: Vec<Feature> = registered.difference(&want).copied().collect();
        if !add.is_empty() {
            let regs = add
                .iter()
                .map(|f| Registration {
                    id: f.id(),
                    method: f.method().into(),
                    register_options: Some(f.options()),
                })
                .collect();
            match client.register_capability(regs).await {
                Ok(()) => registered.extend(add),
                Err(e) => tracing::warn!("client/registerCapability failed: {e}"),
            }
        }
        if !remove.is_empty() {
            let unregs = remove
                .iter()
                .map(|f| Unregistration {
                    id: f.id(),
                    method: f.method().into(),
                })
                .collect();
            match client.unregister_capability(unregs).await {
                Ok(()) => {
                    for f in remove {
                        registered.remove(&f);
                    }
                }
                Err(e) => tracing::warn!("client/unregisterCapability failed: {e}"),
            }
        }
    }
}

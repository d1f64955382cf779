//! Hot swap on save, mapped to LSP: progress while compiling and loading, diagnostics
//! (cleared when fixed), a one-line summary, and the hot-swap / rollback commands.

use super::convert::uri_of;
use super::Backend;
use crate::reload::compile_node::{Diagnostic, Severity};
use crate::reload::SaveOutcome;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{self as lsp, MessageType};

/// Commands this module serves.
pub const COMMANDS: &[&str] = &["orrery.hotSwap", "orrery.rollback"];

fn to_lsp(d: &Diagnostic, text: Option<&str>) -> lsp::Diagnostic {
    lsp::Diagnostic {
        range: super::convert::range(crate::reload::ranges::range(d, text)),
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        source: Some("orrery".into()),
        message: d.message.clone(),
        ..Default::default()
    }
}

fn failed(msg: String) -> Error {
    let mut e = Error::internal_error();
    e.message = msg.into();
    e
}

impl Backend {
    /// Publish `diags` grouped by file; files that had diagnostics from this file's last
    /// compile and have none now are cleared.
    async fn publish(&self, saved: &Path, diags: &[Diagnostic]) {
        let mut by_file: BTreeMap<PathBuf, Vec<lsp::Diagnostic>> = BTreeMap::new();
        by_file.entry(saved.to_path_buf()).or_default();
        let mut texts: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
        for d in diags {
            let file = if d.file.as_os_str().is_empty() {
                saved.to_path_buf()
            } else {
                d.file.clone()
            };
            let file = crate::core::normalize(&file);
            // Ranges are measured on the text that was compiled: the file on disk (else
            // the text the editor has).
            let text = texts
                .entry(file.clone())
                .or_insert_with(|| {
                    std::fs::read_to_string(&file)
                        .ok()
                        .or_else(|| self.core.text(&file))
                })
                .as_deref();
            let diag = to_lsp(d, text);
            by_file.entry(file).or_default().push(diag);
        }
        let files: BTreeSet<PathBuf> = by_file.keys().cloned().collect();
        let stale: Vec<PathBuf> = {
            let mut prev = self.diagnosed.lock().unwrap_or_else(|e| e.into_inner());
            let old = prev
                .insert(saved.to_path_buf(), files.clone())
                .unwrap_or_default();
            old.difference(&files).cloned().collect()
        };
        for f in stale {
            by_file.entry(f).or_default();
        }
        for (file, list) in by_file {
            if let Some(uri) = uri_of(&file) {
                self.client.publish_diagnostics(uri, list, None).await;
            }
        }
    }

    /// Compile and hot-swap a saved file, telling the user how it went.
    pub(super) async fn on_saved(&self, path: PathBuf) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let token = self.progress_begin(&format!("Compiling {name}")).await;
        let outcome = self.core.save(&path).await;
        match outcome {
            SaveOutcome::Swapped(report) => {
                self.publish(&path, &report.warnings).await;
                let summary = report.summary("swapped");
                self.progress_end(token, summary.clone()).await;
                self.client.show_message(MessageType::INFO, summary).await;
                self.refresh_clients().await;
            }
            SaveOutcome::CompileFailed { errors, warnings } => {
                let mut all = errors.clone();
                all.extend(warnings);
                self.publish(&path, &all).await;
                let msg = format!(
                    "{name}: {} error{}; nothing was loaded, the old code keeps running",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                self.progress_end(token, msg.clone()).await;
                self.log(MessageType::WARNING, msg).await;
            }
            SaveOutcome::NotLoaded { reason, warnings } => {
                self.publish(&path, &warnings).await;
                self.progress_end(token, reason.clone()).await;
                self.client
                    .show_message(MessageType::WARNING, format!("Orrery: {reason}"))
                    .await;
            }
        }
    }

    /// `orrery.hotSwap` [file uri or path] and `orrery.rollback` [module].
    pub(super) async fn reload_command(
        &self,
        command: &str,
        args: &[Value],
    ) -> Result<Option<Value>> {
        let arg = args.first().and_then(|a| {
            a.as_str().map(str::to_string).or_else(|| {
                a.get("module")
                    .or_else(|| a.get("uri"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
        });
        match command {
            "orrery.hotSwap" => {
                let Some(arg) = arg else {
                    return Err(Error::invalid_params(
                        "orrery.hotSwap needs a file (uri or path)",
                    ));
                };
                let path = arg
                    .parse::<lsp::Uri>()
                    .ok()
                    .and_then(|u| super::convert::to_path(&u))
                    .unwrap_or_else(|| PathBuf::from(&arg));
                self.on_saved(crate::core::normalize(&path)).await;
                Ok(None)
            }
            "orrery.rollback" => {
                let Some(module) = arg else {
                    return Err(Error::invalid_params(
                        "orrery.rollback needs a module, e.g. \"KV.Bucket\"",
                    ));
                };
                match self.core.rollback(&module).await {
                    Ok(report) => {
                        let summary = report.summary("rolled back");
                        self.client
                            .show_message(MessageType::INFO, summary.clone())
                            .await;
                        self.refresh_clients().await;
                        Ok(Some(Value::String(summary)))
                    }
                    Err(e) => Err(failed(e)),
                }
            }
            other => Err(Error::invalid_params(format!("unknown command {other}"))),
        }
    }
}

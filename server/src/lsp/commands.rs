//! `workspace/executeCommand` beyond the built-in ones.

use super::Backend;
use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::ExecuteCommandParams;

/// Every command the server advertises.
pub const COMMANDS: &[&str] = &["orrery.inspectState", "orrery.status"];

pub async fn execute(_b: &Backend, p: ExecuteCommandParams) -> Result<Option<Value>> {
    Err(Error::invalid_params(format!("unknown command {}", p.command)))
}

//! Live completion (being built): after `Mod.` the node's exports, module names.

use crate::core::Core;
use tower_lsp_server::ls_types::{CompletionParams, CompletionResponse};

pub async fn complete(_core: &Core, _p: CompletionParams) -> Option<CompletionResponse> {
    None
}

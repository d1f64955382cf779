//! The workspace: documents, the tree-sitter index, the mix project layout.

pub mod deps;
pub mod documents;
pub mod erlang;
pub mod index;
pub mod watch;

//! The workspace: documents, the tree-sitter index, the mix project layout.

pub mod documents;
pub mod erlang;
pub mod index;
pub mod watch;

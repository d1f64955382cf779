//! Everything that talks to BEAM nodes: EPMD, the distribution connection, RPC, terms.
//! This module knows nothing about LSP or DAP.

pub mod conn;
pub mod depth;
pub mod epmd;
pub mod error;
pub mod pretty;
pub mod term;

pub use conn::{split_node_name, Connection, Mailbox};
pub use error::BeamError;

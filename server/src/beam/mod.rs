//! Everything that talks to BEAM nodes: distribution, RPC, terms.

pub mod pretty;

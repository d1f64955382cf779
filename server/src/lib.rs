//! Orrery: a language server and debug adapter for Elixir that attaches to the running BEAM node.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod beam;
pub mod workspace;

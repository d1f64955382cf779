//! Orrery: a language server and debug adapter for Elixir that attaches to the running BEAM node.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod agent;
pub mod attach;
pub mod audit;
pub mod beam;
pub mod codec;
pub mod config;
pub mod core;
pub mod dap;
pub mod debounce;
pub mod debug;
pub mod demo;
pub mod framing;
pub mod live;
pub mod lsp;
pub mod managed;
pub mod private;
pub mod reload;
pub mod workspace;

//! Where the code of a module the workspace does not define is (the standard library,
//! Erlang/OTP, dependencies), as the attached node knows it: the source path recorded at
//! compile time (and the same file moved under the module's application directory, or
//! found next to its beam), and the line of a function from the beam's debug info or
//! docs. The paths are the node's: whether a file is there is for the caller to check.

use crate::agent;
use crate::attach::Session;
use crate::beam::term::{self, atom, binary};
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What a node knows about where a module (and a function of it) is defined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSource {
    /// Candidate source files, best first (the recorded path first).
    pub sources: Vec<PathBuf>,
    /// 1-based line of the function's definition, when asked for and known.
    pub line: Option<u32>,
    /// 1-based line of the module's definition, when known.
    pub module_line: Option<u32>,
}

/// Ask the attached nodes (the first that knows the module answers) where `module`
/// (`Enum`, `:lists`) and `function/arity` in it are defined. `None`: no node knows it.
pub async fn locate(
    session: &Session,
    module: &str,
    function: Option<&str>,
    arity: Option<u32>,
) -> Option<NodeSource> {
    let args = vec![
        binary(&term::module_atom(module)),
        function.map(binary).unwrap_or_else(|| atom("nil")),
        arity
            .map(|a| term::int(a as i64))
            .unwrap_or_else(|| atom("nil")),
    ];
    for n in session.nodes() {
        let r = match agent::call_views(&n.conn, "source_of", args.clone(), TIMEOUT).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("source of {module} on {}: {e}", n.info.name);
                continue;
            }
        };
        if term::is_atom(&r, "nil") {
            continue;
        }
        let line = |k: &str| term::get_int(&r, k).filter(|l| *l > 0).map(|l| l as u32);
        return Some(NodeSource {
            sources: term::get(&r, "sources")
                .map(term::list_ref)
                .unwrap_or(&[])
                .iter()
                .filter_map(term::as_string)
                .map(PathBuf::from)
                .collect(),
            line: line("line"),
            module_line: line("module_line"),
        });
    }
    None
}

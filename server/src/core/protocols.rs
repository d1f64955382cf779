//! Protocols stay consolidated across saves. A node started by `mix run` dispatches
//! through consolidated protocols (`_build/<env>/consolidated`): a saved protocol is
//! swapped consolidated over the impls the node dispatches to and the ones in the build,
//! and an impl for a type the node's consolidated protocol does not know is swapped
//! together with that protocol consolidated again to include it. When that cannot be
//! done the save is refused: an unconsolidated protocol is never loaded in place of a
//! consolidated one.

use super::Core;
use crate::attach::Session;
use crate::beam::pretty::module_name;
use crate::beam::term::{self, atom};
use crate::reload::compile_node::{Consolidation, Role};
use eetf::Term;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the primary node dispatches through a protocol (`orrery_swap_v1:protocol/1`).
struct OnNode {
    consolidated: bool,
    /// Types a loaded consolidated protocol dispatches to.
    impls: Vec<String>,
    /// The loaded code's md5 (hex), None when not loaded.
    md5: Option<String>,
    /// Its beam on the node's code path, when that is the code it runs or would load.
    disk: Option<Vec<u8>>,
}

async fn on_node(session: &Session, protocol: &str) -> Result<OnNode, String> {
    let conn = session.primary().map_err(|e| e.to_string())?;
    let r = conn
        .rpc(
            crate::agent::SWAP_MODULE,
            "protocol",
            vec![atom(protocol)],
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(consolidated) = term::get(&r, "consolidated") else {
        return Err(format!("unexpected answer: {r:?}"));
    };
    Ok(OnNode {
        consolidated: term::is_atom(consolidated, "true"),
        impls: term::get(&r, "impls")
            .map(term::list_ref)
            .unwrap_or(&[])
            .iter()
            .filter_map(|t| term::as_atom(t).map(String::from))
            .collect(),
        md5: term::get(&r, "md5")
            .filter(|t| matches!(t, Term::Binary(_)))
            .map(crate::reload::md5_hex),
        disk: match term::get(&r, "disk") {
            Some(Term::Binary(b)) => Some(b.bytes.clone()),
            _ => None,
        },
    })
}

impl Core {
    /// `modules` (a save's, with their protocol `roles`) as they must be loaded on a node
    /// that runs consolidated protocols: each protocol replaced by its consolidated
    /// binary, and each protocol that gets an impl for a new type appended, consolidated
    /// again. Returns the modules and the names (atoms) of the appended protocols; Err
    /// says why nothing may be loaded.
    pub(super) async fn consolidated(
        &self,
        session: &Session,
        (root, sources): (&Path, &[PathBuf]),
        mut modules: Vec<(String, Vec<u8>)>,
        roles: &[(String, Role)],
        timeout: Duration,
    ) -> Result<(Vec<(String, Vec<u8>)>, Vec<String>), String> {
        if roles.is_empty() {
            return Ok((modules, vec![]));
        }
        let fresh: Vec<String> = modules.iter().map(|(m, _)| m.clone()).collect();
        let asked = |p: &str, e: String| {
            format!(
                "could not tell whether the node runs {} consolidated ({e}); nothing was loaded",
                module_name(p)
            )
        };
        // Protocols of this save.
        for (p, _) in roles.iter().filter(|(_, r)| *r == Role::Protocol) {
            let node = on_node(session, p).await.map_err(|e| asked(p, e))?;
            if !node.consolidated {
                continue;
            }
            let Some(i) = modules.iter().position(|(m, _)| m == p) else {
                continue;
            };
            let bins = self.with_earlier_impls(p, &modules);
            let c = Consolidation {
                protocol: p,
                base: &modules[i].1,
                types: &[],
                bins: &bins,
                fresh: &fresh,
                sources,
            };
            let bin = self
                .reloader
                .consolidate(root, &c, timeout)
                .await
                .map_err(|e| refusal(p, &e))?;
            modules[i].1 = bin;
        }
        // Impls of protocols not in this save, per protocol.
        let mut impls: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (_, r) in roles {
            if let Role::Impl { protocol, for_type } = r {
                if !roles
                    .iter()
                    .any(|(m, r)| m == protocol && *r == Role::Protocol)
                {
                    impls
                        .entry(protocol.as_str())
                        .or_default()
                        .push(for_type.clone());
                }
            }
        }
        let mut added = vec![];
        for (p, types) in impls {
            let node = on_node(session, p).await.map_err(|e| asked(p, e))?;
            if !node.consolidated {
                continue;
            }
            // A loaded protocol that already dispatches to every type: nothing to add. Not
            // loaded: its consolidated beam decides (below); an unchanged one is not loaded.
            if node.md5.is_some() && types.iter().all(|t| node.impls.contains(t)) {
                continue;
            }
            let base = node
                .md5
                .as_deref()
                .and_then(|md5| self.reloader.current(p, md5))
                .or(node.disk)
                .ok_or_else(|| {
                    format!(
                        "{} runs consolidated on the node, but neither as the build on disk nor as code Orrery loaded: it cannot be consolidated again with the impl for {}. Nothing was loaded; run `mix compile` and restart the node",
                        module_name(p),
                        types.iter().map(|t| module_name(t)).collect::<Vec<_>>().join(", ")
                    )
                })?;
            let bins = self.with_earlier_impls(p, &modules);
            let c = Consolidation {
                protocol: p,
                base: &base,
                types: &types,
                bins: &bins,
                fresh: &fresh,
                sources,
            };
            let bin = self
                .reloader
                .consolidate(root, &c, timeout)
                .await
                .map_err(|e| refusal(p, &e))?;
            modules.push((p.to_string(), bin));
            added.push(p.to_string());
        }
        Ok((modules, added))
    }

    /// `modules` and the impls of `protocol` Orrery loaded by earlier saves (not in the
    /// build yet), for the compile node to see while it consolidates.
    fn with_earlier_impls(
        &self,
        protocol: &str,
        modules: &[(String, Vec<u8>)],
    ) -> Vec<(String, Vec<u8>)> {
        let mut bins = modules.to_vec();
        for (m, b) in self.reloader.current_with_prefix(&format!("{protocol}.")) {
            if !bins.iter().any(|(n, _)| *n == m) {
                bins.push((m, b));
            }
        }
        bins
    }
}

fn refusal(protocol: &str, why: &str) -> String {
    format!(
        "{} runs consolidated on the node and could not be consolidated with the new code ({why}); nothing was loaded (an unconsolidated protocol is never loaded in its place)",
        module_name(protocol)
    )
}

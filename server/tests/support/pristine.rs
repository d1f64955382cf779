//! "The node is as it was found": loaded modules match mix's build md5 for md5, and no
//! Orrery module is left loaded.

use super::{rpc, TestNode};
use orrery::beam::term::{self, atom};

/// Modules (atom names) whose loaded code differs from their `.beam` on disk.
pub fn changed_modules(node: &TestNode, modules: &[&str]) -> Vec<String> {
    modules
        .iter()
        .filter(|m| {
            let loaded = rpc(
                node,
                "erlang",
                "get_module_info",
                vec![atom(m), atom("md5")],
            )
            .unwrap();
            let file = rpc(node, "code", "which", vec![atom(m)]).unwrap();
            let on_disk = rpc(node, "beam_lib", "md5", vec![file]).unwrap();
            let disk_md5 = term::as_tuple(&on_disk)
                .and_then(|t| t.get(1).cloned())
                .and_then(|pair| term::as_tuple(&pair).and_then(|p| p.get(1).cloned()));
            disk_md5.as_ref() != Some(&loaded)
        })
        .map(|m| m.to_string())
        .collect()
}

/// Loaded modules whose name starts with `orrery` (any case, `Elixir.` prefix ignored).
pub fn orrery_modules_loaded(node: &TestNode) -> Vec<String> {
    let all = rpc(node, "code", "all_loaded", vec![]).unwrap();
    term::list_ref(&all)
        .iter()
        .filter_map(|e| term::as_tuple(e).and_then(|t| term::as_atom(&t[0]).map(String::from)))
        .filter(|m| {
            m.trim_start_matches("Elixir.")
                .to_lowercase()
                .starts_with("orrery")
        })
        .collect()
}

/// Assert both: listed modules equal their build, no Orrery module loaded.
pub fn assert_pristine(node: &TestNode, modules: &[&str]) {
    let changed = changed_modules(node, modules);
    assert!(
        changed.is_empty(),
        "modules differ from the build: {changed:?}"
    );
    let left = orrery_modules_loaded(node);
    assert!(left.is_empty(), "Orrery modules still loaded: {left:?}");
}

//! Where the sources of the workspace's dependencies are, without a node: fetched deps
//! (`deps/<dep>/lib`) and path dependencies written in the `mix.exs` files of the
//! project and its umbrella apps (`{:dep, path: "../dep"}`, resolved to the real path).
//! Best effort: a dependency configured in some other way is found through the node.

use std::path::{Path, PathBuf};

/// Source directories (`lib/`) of the dependencies of the mix project at `root`, each
/// once, by real path, sorted.
pub fn source_dirs(root: &Path) -> Vec<PathBuf> {
    let mut projects = vec![root.to_path_buf()];
    if let Ok(apps) = std::fs::read_dir(root.join("apps")) {
        projects.extend(apps.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let mut dep_roots = vec![];
    if let Ok(deps) = std::fs::read_dir(root.join("deps")) {
        dep_roots.extend(deps.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for project in &projects {
        let Ok(mix) = std::fs::read_to_string(project.join("mix.exs")) else {
            continue;
        };
        dep_roots.extend(path_deps(&mix).into_iter().map(|p| project.join(p)));
    }
    let own = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut dirs: Vec<PathBuf> = dep_roots
        .into_iter()
        .filter_map(|d| std::fs::canonicalize(d.join("lib")).ok())
        .filter(|d| d.is_dir() && *d != own.join("lib"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The `path: "..."` values written in a `mix.exs` (comments left out).
pub fn path_deps(mix: &str) -> Vec<String> {
    let mut out = vec![];
    for line in mix.lines() {
        let code = line.split('#').next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("path:") {
            rest = rest[at + "path:".len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                if let Some(end) = lit.find('"') {
                    out.push(lit[..end].to_string());
                    rest = &lit[end + 1..];
                    continue;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_deps_are_read_from_mix_exs() {
        let mix = r#"
  defp deps do
    [
      {:shapes_dep, path: "../shapes_dep"},
      # {:old, path: "../old"},
      {:other, path: "vendor/other", override: true}, {:hexed, "~> 1.0"}
    ]
  end
"#;
        assert_eq!(path_deps(mix), vec!["../shapes_dep", "vendor/other"]);
    }

    #[test]
    fn deps_and_path_deps_are_source_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        for d in [
            "app/lib",
            "app/deps/fetched/lib",
            "dep/lib",
            "app/deps/nolib",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            root.join("mix.exs"),
            r#"[{:dep, path: "../dep"}, {:self, path: "."}]"#,
        )
        .unwrap();
        let real = |p: &str| std::fs::canonicalize(dir.path().join(p)).unwrap();
        assert_eq!(
            source_dirs(&root),
            vec![real("app/deps/fetched/lib"), real("dep/lib")]
        );
    }
}

//! Which sources a save compiles: Elixir files (`.ex`), Erlang sources (`src/*.erl`, in
//! umbrella apps `apps/*/src`) and Erlang headers (`.hrl`: the sources of the same app
//! that include it).

use std::path::{Path, PathBuf};

/// What kind of source a saved file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Elixir,
    Erlang,
    Header,
}

/// The kind of a source a save compiles and swaps; None for anything else (`.exs`
/// scripts and tests, other files).
pub fn kind(path: &Path) -> Option<SourceKind> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("ex") => Some(SourceKind::Elixir),
        Some("erl") => Some(SourceKind::Erlang),
        Some("hrl") => Some(SourceKind::Header),
        _ => None,
    }
}

/// Whether a save of `path` is compiled and swapped.
pub fn swappable(path: &Path) -> bool {
    kind(path).is_some()
}

/// The (umbrella) app that holds `file`: its nearest directory with a `mix.exs`, no
/// higher than `root`.
pub fn app_dir(root: &Path, file: &Path) -> PathBuf {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d.join("mix.exs").is_file() {
            return d.to_path_buf();
        }
        if d == root {
            break;
        }
        dir = d.parent();
    }
    root.to_path_buf()
}

/// Whether an Erlang source is one mix compiles for its app: under the app's `src/`
/// (the default `erlc_paths`), not in `deps/` or `_build/`.
pub fn in_app_src(root: &Path, file: &Path) -> bool {
    let skipped = file
        .components()
        .any(|c| matches!(c.as_os_str().to_str(), Some("deps" | "_build")));
    !skipped && file.starts_with(app_dir(root, file).join("src"))
}

/// The Erlang sources that include `header`: the `.erl` files under its app's `src/`
/// with an `-include` or `-include_lib` line that names the header's file name.
pub fn includers(root: &Path, header: &Path) -> Vec<PathBuf> {
    let Some(name) = header.file_name().and_then(|n| n.to_str()) else {
        return vec![];
    };
    let quoted = format!("\"{name}\"");
    let in_path = format!("/{name}\"");
    let mut out = vec![];
    let mut dirs = vec![app_dir(root, header).join("src")];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "erl") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let includes = text.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with("-include") && (l.contains(&quoted) || l.contains(&in_path))
                });
                if includes {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(Path::new("/p/lib/a.ex")), Some(SourceKind::Elixir));
        assert_eq!(kind(Path::new("/p/src/a.erl")), Some(SourceKind::Erlang));
        assert_eq!(
            kind(Path::new("/p/include/a.hrl")),
            Some(SourceKind::Header)
        );
        assert_eq!(kind(Path::new("/p/test/a_test.exs")), None);
        assert_eq!(kind(Path::new("/p/mix.lock")), None);
    }

    #[test]
    fn a_header_is_compiled_through_the_sources_of_its_app_that_include_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("mix.exs"), "").unwrap();
        let app = root.join("apps/store");
        for d in ["src/sub", "include"] {
            std::fs::create_dir_all(app.join(d)).unwrap();
        }
        std::fs::write(app.join("mix.exs"), "").unwrap();
        let other = root.join("apps/web/src");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(root.join("apps/web/mix.exs"), "").unwrap();
        let files = [
            (app.join("src/a.erl"), "-module(a).\n-include(\"h.hrl\").\n"),
            (
                app.join("src/sub/b.erl"),
                "-module(b).\n  -include_lib(\"store/include/h.hrl\").\n",
            ),
            (app.join("src/c.erl"), "-module(c).\n%% h.hrl is not used\n"),
            (
                app.join("src/d.erl"),
                "-module(d).\n-include(\"oh.hrl\").\n",
            ),
            (other.join("e.erl"), "-module(e).\n-include(\"h.hrl\").\n"),
        ];
        for (p, text) in &files {
            std::fs::write(p, text).unwrap();
        }
        let header = app.join("include/h.hrl");
        assert_eq!(app_dir(root, &header), app);
        assert!(in_app_src(root, &app.join("src/sub/b.erl")));
        assert!(!in_app_src(root, &app.join("test/t.erl")));
        assert!(!in_app_src(root, &root.join("deps/x/src/x.erl")));
        assert_eq!(
            includers(root, &header),
            vec![app.join("src/a.erl"), app.join("src/sub/b.erl")]
        );
    }
}

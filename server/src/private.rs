//! What keeps Orrery's secrets and nodes private, in one place:
//!
//! - [`elixir_node`]: the one way Orrery starts a BEAM node (the embedded default, a DAP
//!   `launch`, the compile node). The cookie never reaches argv (`ps` and
//!   `/proc/PID/cmdline` are world-readable): the node boots with `-nocookie` (it accepts
//!   no connection at all), and its first `-e` takes the cookie from an environment
//!   variable (`/proc/PID/environ` is private to the owner), removes it from the node's
//!   environment (so the app's own child processes do not inherit it) and sets it. The
//!   node listens on loopback only (`inet_dist_use_interface`), and so does an EPMD it
//!   starts (`ERL_EPMD_ADDRESS`).
//! - [`private_dir`] / [`write_private`] / [`append_private`]: files holding node data are
//!   0600; directories Orrery creates for them are 0700 (`.orrery/` is made 0700 always,
//!   with a `.gitignore` of `*` in it: the audit log and recordings are not the project's).

use std::io::Write;
use std::path::Path;
use tokio::process::Command;

/// The environment variable that carries the cookie into a node Orrery starts.
pub const COOKIE_ENV: &str = "ORRERY_NODE_COOKIE";

/// Erlang flags of every node Orrery starts: no cookie until the first `-e` sets it,
/// distribution on loopback only.
const ERL_FLAGS: &str = "-nocookie -kernel inet_dist_use_interface {127,0,0,1}";

/// Elixir run first in the node: take the cookie from the environment, forget it there,
/// set it. Until then the node (`-nocookie`) accepts no connection.
const SET_COOKIE: &str = "c = System.fetch_env!(\"ORRERY_NODE_COOKIE\"); \
     System.delete_env(\"ORRERY_NODE_COOKIE\"); Node.set_cookie(String.to_atom(c))";

/// `elixir --sname <short> [--hidden] --erl <flags> -e <set cookie>`, the cookie in the
/// environment only. Callers add their own `-e`/`-S` arguments after it.
pub fn elixir_node(short: &str, cookie: &str, hidden: bool) -> Command {
    let mut cmd = Command::new("elixir");
    cmd.args(["--sname", short]);
    if hidden {
        cmd.arg("--hidden");
    }
    cmd.args(["--erl", ERL_FLAGS, "-e", SET_COOKIE])
        .env(COOKIE_ENV, cookie)
        .env("ERL_EPMD_ADDRESS", "127.0.0.1");
    cmd
}

/// Make sure EPMD runs; when it does not, start it on loopback only (and without any
/// secret in its environment: it outlives the node). Returns whether we started it.
pub async fn ensure_epmd(host: &str) -> bool {
    if crate::beam::epmd::names(host).await.is_ok() {
        return false;
    }
    let started = Command::new("epmd")
        .args(["-daemon", "-address", "127.0.0.1"])
        .env_remove(COOKIE_ENV)
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .status()
        .await
        .is_ok_and(|s| s.success());
    if started {
        // `-daemon` returns once it forked; wait until it answers.
        for _ in 0..50 {
            if crate::beam::epmd::names(host).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    started
}

/// Create `dir` (and missing parents) and make it 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)?;
    ignored_by_git(dir)
}

/// A workspace's `.orrery/` holds state backups and recordings: git ignores it (a
/// `.gitignore` of `*`, as `_build/` has), so nobody commits them by accident. A
/// `.gitignore` already there (the user's) is left alone.
fn ignored_by_git(dir: &Path) -> std::io::Result<()> {
    if dir.file_name().is_none_or(|n| n != ".orrery") {
        return Ok(());
    }
    let ignore = dir.join(".gitignore");
    if ignore.exists() {
        return Ok(());
    }
    std::fs::write(
        ignore,
        "# Orrery's own files (audit log, recordings), never part of the project.\n*\n",
    )
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Missing directories are made 0700; an existing one (the user's) is left as is.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        ignored_by_git(parent)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .open(path)?;
    // A file created earlier with a wider mode is narrowed too.
    set_mode(path, 0o600)?;
    Ok(f)
}

/// Write `data` to `path`: the file 0600, missing directories 0700.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    open_private(path, false)?.write_all(data)
}

/// Append `data` to `path`: the file 0600, missing directories 0700.
pub fn append_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    open_private(path, true)?.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_and_dirs() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a/b/log");
        std::fs::create_dir_all(d.path().join("a")).unwrap();
        append_private(&f, b"x").unwrap();
        append_private(&f, b"y").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&d.path().join("a/b")), 0o700);
        assert_eq!(std::fs::read(&f).unwrap(), b"xy");
        write_private(&f, b"z").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"z");
    }

    #[test]
    fn git_ignores_the_orrery_dir() {
        let d = tempfile::tempdir().unwrap();
        write_private(&d.path().join(".orrery/recording.json"), b"{}").unwrap();
        let ignore = std::fs::read_to_string(d.path().join(".orrery/.gitignore")).unwrap();
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
        // The user's own is kept.
        std::fs::write(d.path().join(".orrery/.gitignore"), "mine\n").unwrap();
        private_dir(&d.path().join(".orrery")).unwrap();
        let kept = std::fs::read_to_string(d.path().join(".orrery/.gitignore")).unwrap();
        assert_eq!(kept, "mine\n");
        // Elsewhere no .gitignore appears.
        write_private(&d.path().join("other/x"), b"x").unwrap();
        assert!(!d.path().join("other/.gitignore").exists());
    }

    #[test]
    fn the_cookie_is_not_in_argv() {
        let cmd = elixir_node("n", "SECRETCOOKIE", true);
        let argv: Vec<_> = cmd.as_std().get_args().collect();
        assert!(!format!("{argv:?}").contains("SECRETCOOKIE"));
    }
}

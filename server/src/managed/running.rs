//! Nodes already running the workspace's project (a developer's `iex -S mix phx.server`),
//! found without touching them: EPMD says which names listen on which ports, `/proc`
//! says which OS process holds each listening socket and where that process runs. A
//! node whose working directory is the project root runs this project. Connecting to
//! find out would make every node of another cookie log a refused handshake, so nothing
//! here connects. Linux only (elsewhere: none found, and Orrery starts its own node as
//! before).

use crate::beam::epmd;
use std::collections::HashMap;
use std::path::Path;

/// A node of the workspace's project that someone else started.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningCopy {
    /// `name@host`.
    pub node: String,
    /// Its OS process.
    pub pid: u32,
    /// What it runs, from its command line (`mix phx.server`), if that says.
    pub runs: Option<String>,
}

/// The nodes registered in this host's EPMD whose OS process runs in `root`, except
/// Orrery's own (its managed nodes `<app>_orrery_<id>`, compile nodes `orrery_…`).
pub async fn running_copies(root: &Path) -> Vec<RunningCopy> {
    let host = crate::config::local_hostname().unwrap_or_else(|| "localhost".into());
    let Ok(names) = epmd::names(&host).await else {
        return vec![];
    };
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let names: Vec<(String, u16)> = names
        .into_iter()
        .filter(|(n, _)| !n.starts_with("orrery_") && !n.contains("_orrery_"))
        .collect();
    if names.is_empty() {
        return vec![];
    }
    tokio::task::spawn_blocking(move || {
        let owners = listening_owners(names.iter().map(|(_, p)| *p).collect());
        let mut out = vec![];
        for (name, port) in names {
            let Some(&pid) = owners.get(&port) else {
                continue;
            };
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            if cwd.as_deref() != Some(root.as_path()) {
                continue;
            }
            out.push(RunningCopy {
                node: format!("{name}@{host}"),
                pid,
                runs: mix_task_of(pid),
            });
        }
        out
    })
    .await
    .unwrap_or_default()
}

/// Port -> pid of the process listening on it, for `ports` (TCP over IPv4 and IPv6).
fn listening_owners(ports: Vec<u16>) -> HashMap<u16, u32> {
    let mut inodes: HashMap<u64, u16> = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some((port, inode)) = listener(line) {
                if ports.contains(&port) {
                    inodes.insert(inode, port);
                }
            }
        }
    }
    let mut owners = HashMap::new();
    if inodes.is_empty() {
        return owners;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // Processes of other users are not readable: they are not ours to attach to.
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(port) = socket_inode(&target).and_then(|i| inodes.get(&i)) {
                owners.insert(*port, pid);
            }
        }
    }
    owners
}

/// A `/proc/net/tcp` line of a listening socket: (local port, inode).
fn listener(line: &str) -> Option<(u16, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
    Some((port, f[9].parse().ok()?))
}

/// `socket:[12345]` -> 12345.
fn socket_inode(target: &Path) -> Option<u64> {
    let s = target.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// `mix phx.server` from a BEAM's argv (`… -extra … -S mix phx.server`), if it ran mix.
fn mix_task_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args.iter().position(|a| a == "mix")?;
    let task: Vec<&str> = args[at + 1..]
        .iter()
        .take_while(|a| !a.starts_with('-') || a.as_str() == "--no-halt")
        .map(String::as_str)
        .collect();
    Some(if task.is_empty() {
        "mix".to_string()
    } else {
        format!("mix {}", task.join(" "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_line_gives_port_and_inode() {
        let l = "   3: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98765 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener(l), Some((0xA1B2, 98765)));
        let established = l.replace(" 0A ", " 01 ");
        assert_eq!(listener(&established), None);
        assert_eq!(listener("garbage"), None);
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode(Path::new("socket:[42]")), Some(42));
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }
}

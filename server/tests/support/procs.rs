//! The processes a test's `orrery` started, as another user would see them in /proc.

use std::collections::BTreeSet;

pub fn read(path: String) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// `pid` and all its descendants.
pub fn tree(root: u32) -> BTreeSet<u32> {
    let mut all = BTreeSet::from([root]);
    loop {
        let before = all.len();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = String::from_utf8_lossy(&read(format!("/proc/{pid}/stat"))).into_owned();
            // The parent pid is the second field after the `(comm)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid.is_some_and(|p| all.contains(&p)) {
                all.insert(pid);
            }
        }
        if all.len() == before {
            return all;
        }
    }
}

/// Cookies handed to nodes through the environment.
pub fn cookies(pids: &BTreeSet<u32>) -> BTreeSet<String> {
    pids.iter()
        .flat_map(|p| {
            read(format!("/proc/{p}/environ"))
                .split(|b| *b == 0)
                .filter_map(|kv| kv.strip_prefix(b"ORRERY_NODE_COOKIE="))
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Local addresses (hex, as in /proc/net/tcp) of the listening sockets of `pids`.
pub fn listening(pids: &BTreeSet<u32>) -> Vec<String> {
    let mut inodes = BTreeSet::new();
    for p in pids {
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) {
            for fd in fds.flatten() {
                if let Ok(l) = std::fs::read_link(fd.path()) {
                    let l = l.to_string_lossy().into_owned();
                    if let Some(i) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                        inodes.insert(i.to_string());
                    }
                }
            }
        }
    }
    let mut out = vec![];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = String::from_utf8_lossy(&read(table.to_string())).into_owned();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A = LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                out.push(f[1].split(':').next().unwrap_or("").to_string());
            }
        }
    }
    out
}

/// Whether a /proc/net/tcp{,6} local address is loopback (127.0.0.1 or ::1).
pub fn is_loopback(hex: &str) -> bool {
    hex == "0100007F" || hex == "00000000000000000000000001000000"
}

/// Check what other users can see of Orrery's processes: no cookie in any argv, every
/// listening socket on loopback. Returns the cookies found in their environments.
pub fn assert_private(root: u32) -> BTreeSet<String> {
    let procs = tree(root);
    let secrets = cookies(&procs);
    for p in &procs {
        let cmdline = read(format!("/proc/{p}/cmdline"));
        let text = String::from_utf8_lossy(&cmdline).into_owned();
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "cookie in the argv of {p}: {text}"
            );
        }
        assert!(
            !text.contains("-setcookie") && !text.contains("--cookie"),
            "{text}"
        );
    }
    let addrs = listening(&procs);
    assert!(!addrs.is_empty(), "the nodes listen somewhere");
    for a in &addrs {
        assert!(
            is_loopback(a),
            "a listening socket not on loopback: {a} ({addrs:?})"
        );
    }
    secrets
}

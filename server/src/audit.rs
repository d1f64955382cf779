//! The audit log: every write Orrery makes to a node (hot swap, rollback, state
//! replacement, ETS edits, sent messages) is appended to `.orrery/audit.log` in the
//! workspace, one JSON object per line. Never holds the cookie.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// One audited write.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 time (UTC).
    pub time: String,
    pub node: &'a str,
    /// e.g. "hot_swap", "rollback", "replace_state", "ets_insert", "send".
    pub action: &'a str,
    /// Module, process or table the write touched.
    pub target: &'a str,
    /// md5 (or other fingerprint) before and after, when it applies.
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    /// Free text: what was done, or the backup to undo it.
    pub detail: Option<&'a str>,
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp, without extra crates.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Path of the audit log for a workspace root.
pub fn log_path(root: &Path) -> PathBuf {
    root.join(".orrery").join("audit.log")
}

/// Append an entry. Errors are returned so the caller can tell the user; the write to
/// the node has already happened by then, so callers log before acting where possible.
pub fn append(root: &Path, entry: &Entry<'_>) -> std::io::Result<()> {
    // It holds full state backups: 0600 in a 0700 `.orrery/`.
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let path = log_path(root);
    if let Some(dir) = path.parent() {
        crate::private::private_dir(dir)?;
    }
    crate::private::append_private(&path, line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        for action in ["hot_swap", "rollback"] {
            append(
                dir.path(),
                &Entry {
                    time: now_rfc3339(),
                    node: "kv@h",
                    action,
                    target: "KV.Bucket",
                    before: Some("aa"),
                    after: Some("bb"),
                    detail: None,
                },
            )
            .unwrap();
        }
        let text = std::fs::read_to_string(log_path(dir.path())).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"action\":\"rollback\""));
        assert!(now_rfc3339().ends_with('Z'));
    }
}

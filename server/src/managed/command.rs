//! What the embedded default runs to serve the app: the `command` setting (a mix task,
//! `"mix phx.server"`, optionally after `VAR=value` words and `iex -S`), else `mix
//! phx.server` for a Phoenix project (one whose build has Phoenix's `phx.server` task),
//! else `mix run --no-halt`.

use super::Launch;
use std::path::Path;

/// The mix tasks that pass their options on to `mix run` (so `-e` runs once the app has
/// started): `run` itself, and Phoenix's `phx.server`, which is `mix run --no-halt` with
/// the endpoints serving.
const RUN_LIKE: [&str; 2] = ["run", "phx.server"];

/// The launch for a `command` setting.
pub fn from_setting(command: &str) -> Result<Launch, String> {
    let bad = |why: &str| {
        format!(
            "`command` {command:?} {why}: write the mix task that serves your app, for \
             example \"mix phx.server\" or \"MIX_ENV=dev mix run --no-halt\""
        )
    };
    let words = shlex::split(command).ok_or_else(|| bad("does not parse (an open quote?)"))?;
    let mut words = words.as_slice();
    let mut env = vec![];
    while let Some((k, v)) = words.first().and_then(|w| w.split_once('=')) {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            break;
        }
        env.push((k.to_string(), v.to_string()));
        words = &words[1..];
    }
    // `iex -S mix phx.server`: there is no terminal for IEx here, the node runs the same.
    if words.len() >= 2 && words[0] == "iex" && words[1] == "-S" {
        words = &words[2..];
    }
    match words.first().map(String::as_str) {
        Some("mix") => words = &words[1..],
        Some(_) => return Err(bad("is no mix task")),
        None => return Err(bad("is empty")),
    }
    let Some((task, args)) = words.split_first() else {
        return Err(bad("names no task after `mix`"));
    };
    if task.starts_with('-') {
        return Err(bad("names no task after `mix`"));
    }
    Ok(Launch {
        task: Some(task.clone()),
        task_args: args.to_vec(),
        env,
        gated: false,
        serves: true,
    })
}

/// Whether `mix run`'s options reach the task (the node can say when the app started).
pub fn run_like(task: &str) -> bool {
    RUN_LIKE.contains(&task)
}

/// The task that serves a project with no `command` set, once it is compiled for
/// `mix_env`: `phx.server` where the build has Phoenix's task (from the phoenix
/// dependency, or the project's own), else `run --no-halt`.
pub fn default_serve(root: &Path, mix_env: &str) -> (String, Vec<String>) {
    let lib = root.join("_build").join(mix_env).join("lib");
    let phoenix = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .any(|app| {
            app.path()
                .join("ebin/Elixir.Mix.Tasks.Phx.Server.beam")
                .is_file()
        });
    if phoenix {
        ("phx.server".into(), vec![])
    } else {
        ("run".into(), vec!["--no-halt".into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_a_mix_task_with_env_and_args() {
        let l = from_setting("MIX_ENV=dev PORT=4001 mix phx.server --open").unwrap();
        assert_eq!(l.task.as_deref(), Some("phx.server"));
        assert_eq!(l.task_args, vec!["--open"]);
        assert_eq!(
            l.env,
            vec![
                ("MIX_ENV".to_string(), "dev".to_string()),
                ("PORT".to_string(), "4001".to_string())
            ]
        );
        let l = from_setting("iex -S mix run --no-halt").unwrap();
        assert_eq!(l.task.as_deref(), Some("run"));
        assert_eq!(l.task_args, vec!["--no-halt"]);
    }

    #[test]
    fn a_command_that_is_no_mix_task_says_how_to_write_one() {
        for bad in [
            "",
            "elixir app.exs",
            "mix",
            "mix --version",
            "mix \"phx.server",
        ] {
            let e = from_setting(bad).unwrap_err();
            assert!(e.contains("mix phx.server"), "{bad}: {e}");
        }
    }
}

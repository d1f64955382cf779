//! The `orrery` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "Language server and debug adapter for Elixir that attaches to the running BEAM node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Language Server Protocol over stdio.
    Lsp,
    /// Serve the Debug Adapter Protocol over stdio.
    Dap,
    /// Start the bundled example app, attach, and walk through what Orrery shows.
    Demo {
        /// The example project (default: examples/orbit next to the binary's repository).
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Attach to a node and print what the attach found.
    Status {
        /// Node name, e.g. kv@localhost.
        #[arg(long)]
        node: String,
        /// Cookie (default: ~/.erlang.cookie).
        #[arg(long, env = "ORRERY_COOKIE", hide_env_values = true)]
        cookie: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing(default: &str) {
    // Logs go to stderr: stdout carries the protocol. Editors file stderr under errors,
    // so the servers only log warnings unless ORRERY_LOG (else RUST_LOG) says otherwise.
    let filter = ["ORRERY_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        })
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    // tower-lsp-server logs every raw message at trace level, `initializationOptions` and
    // `workspace/configuration` replies included: those carry the cookie. Never enabled.
    let filter = [
        "tower_lsp_server::codec",
        "tower_lsp_server::service::client",
    ]
    .into_iter()
    .fold(filter, |f, target| match format!("{target}=off").parse() {
        Ok(d) => f.add_directive(d),
        Err(_) => f,
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(match cli.command {
        Command::Lsp | Command::Dap => "warn",
        _ => "error",
    });
    // Terms are bounded in depth on the wire (`beam::depth`); walks over them recurse
    // within that bound, with room to spare.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orrery: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Lsp => {
                orrery::lsp::serve_stdio().await;
                Ok(())
            }
            Command::Dap => {
                orrery::dap::serve_stdio().await;
                Ok(())
            }
            Command::Demo { project } => orrery::demo::run(project).await,
            Command::Status { node, cookie, json } => status(&node, cookie, json).await,
        }
    });
    // Do not wait for lingering blocking tasks (e.g. a stdin read) at exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orrery: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn status(node: &str, cookie: Option<String>, json: bool) -> anyhow::Result<()> {
    let settings = orrery::config::Settings {
        node: Some(node.to_string()),
        cookie,
        ..Default::default()
    };
    let cookie = settings.resolve_cookie().map_err(anyhow::Error::msg)?;
    orrery::beam::split_node_name(node)?;
    let session = orrery::attach::Session::start(node, &cookie, true);
    let settled = session.wait_settled(Duration::from_secs(15)).await;
    if let orrery::attach::Status::Detached { reason } = settled {
        session.detach().await;
        anyhow::bail!("{reason}");
    }
    let nodes = session.nodes();
    if json {
        let v: Vec<_> = nodes
            .iter()
            .map(|n| serde_json::to_value(&n.info).unwrap_or_default())
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for n in &nodes {
            let i = &n.info;
            println!("node:        {}", i.name);
            println!("otp:         {}", i.otp);
            println!(
                "elixir:      {}",
                i.elixir.as_deref().unwrap_or("(not running)")
            );
            println!("processes:   {}", i.process_count);
            println!(
                "apps:        {}",
                i.apps
                    .iter()
                    .map(|(a, v)| format!("{a} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "cluster:     {}",
                if i.nodes.is_empty() {
                    "(no peers)".to_string()
                } else {
                    i.nodes.join(", ")
                }
            );
            println!();
        }
    }
    session.detach().await;
    Ok(())
}

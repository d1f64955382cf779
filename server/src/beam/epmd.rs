//! EPMD lookups: which nodes run on a host and on which port.

use super::error::BeamError;
use erl_dist::epmd::{EpmdClient, DEFAULT_EPMD_PORT};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncReadCompatExt;

const EPMD_TIMEOUT: Duration = Duration::from_secs(3);

async fn client(
    host: &str,
) -> Result<EpmdClient<tokio_util::compat::Compat<TcpStream>>, BeamError> {
    let port = std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(DEFAULT_EPMD_PORT);
    let no_epmd = || BeamError::NoEpmd {
        host: host.to_string(),
    };
    let stream = tokio::time::timeout(EPMD_TIMEOUT, tcp_connect(host, port))
        .await
        .map_err(|_| no_epmd())?
        .map_err(|_| no_epmd())?;
    let _ = stream.set_nodelay(true);
    Ok(EpmdClient::new(stream.compat()))
}

/// Connect to `host:port`; for this machine's own name, fall back to 127.0.0.1 (the nodes
/// and EPMD Orrery starts listen on loopback only, and the host name may resolve to
/// another local address, e.g. Debian's 127.0.1.1).
pub(crate) async fn tcp_connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    match TcpStream::connect((host, port)).await {
        Ok(s) => Ok(s),
        Err(e) => {
            let local =
                host == "localhost" || crate::config::local_hostname().is_some_and(|h| h == host);
            if local {
                TcpStream::connect(("127.0.0.1", port)).await
            } else {
                Err(e)
            }
        }
    }
}

/// Names and ports of the nodes registered on `host`.
pub async fn names(host: &str) -> Result<Vec<(String, u16)>, BeamError> {
    let c = client(host).await?;
    tokio::time::timeout(EPMD_TIMEOUT, c.get_names())
        .await
        .map_err(|_| BeamError::NoEpmd {
            host: host.to_string(),
        })?
        .map_err(|e| BeamError::Connect {
            node: host.to_string(),
            detail: format!("EPMD: {e}"),
        })
}

/// The distribution port of `name` on `host`, with a helpful error when it is not there.
pub async fn port_of(name: &str, host: &str) -> Result<u16, BeamError> {
    let c = client(host).await?;
    let entry = tokio::time::timeout(EPMD_TIMEOUT, c.get_node(name))
        .await
        .map_err(|_| BeamError::NoEpmd {
            host: host.to_string(),
        })?
        .map_err(|e| BeamError::Connect {
            node: format!("{name}@{host}"),
            detail: format!("EPMD: {e}"),
        })?;
    match entry {
        Some(e) => Ok(e.port),
        None => {
            let mut registered: Vec<String> = names(host)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            registered.sort();
            Err(BeamError::NoSuchNode {
                name: name.to_string(),
                host: host.to_string(),
                registered: if registered.is_empty() {
                    "none".into()
                } else {
                    registered.join(", ")
                },
            })
        }
    }
}

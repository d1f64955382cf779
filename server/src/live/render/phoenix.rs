//! Hover and hint text for LiveViews, routers and endpoints (`live/phoenix.rs`).

use super::super::phoenix::{
    EndpointOnNode, PhoenixSnapshot, RoutesOnNode, ViewOnNode, VIEWS_SHOWN,
};

/// Routes listed per router in a hover.
const ROUTES_SHOWN: usize = 30;

/// The Phoenix parts of a module's hover (empty when it is none of them).
pub fn hover_blocks(module: &str, p: &PhoenixSnapshot) -> String {
    let mut out = String::new();
    if let Some(views) = p.views.get(module) {
        out.push_str(&views_block(module, views));
    }
    for r in p.routers.get(module).into_iter().flatten() {
        out.push_str(&routes_block(r));
    }
    for e in p.endpoints.get(module).into_iter().flatten() {
        out.push_str(&endpoint_block(module, e));
    }
    out
}

fn views_block(module: &str, views: &[ViewOnNode]) -> String {
    let n = views.len();
    let mut out = format!(
        "\n{n} connected view{} of LiveView `{module}`",
        if n == 1 { "" } else { "s" }
    );
    if n > VIEWS_SHOWN {
        out.push_str(&format!(" (first {VIEWS_SHOWN})"));
    }
    out.push_str("\n\n");
    for v in views.iter().take(VIEWS_SHOWN) {
        let mut line = format!("- {} on `{}`", v.pid, v.node);
        if let Some(u) = &v.url {
            line.push_str(&format!(" · {u}"));
        }
        if let Some(p) = &v.params {
            line.push_str(&format!(" · params `{p}`"));
        }
        if let Some(t) = &v.topic {
            line.push_str(&format!(" · topic `{t}`"));
        }
        line.push_str(&format!(" · queue {}\n", v.queue));
        out.push_str(&line);
        out.push_str("\n  `socket.assigns`:\n\n```elixir\n");
        out.push_str(&v.assigns);
        out.push_str("\n```\n");
    }
    out
}

fn routes_block(r: &RoutesOnNode) -> String {
    let (live, other): (Vec<_>, Vec<_>) = r.routes.iter().partition(|x| x.live.is_some());
    let mut out = format!(
        "\n{} route{} on `{}`, {} live\n\n",
        r.count,
        if r.count == 1 { "" } else { "s" },
        r.node,
        live.len()
    );
    if !live.is_empty() {
        out.push_str("Live routes:\n\n");
        for x in live.iter().take(ROUTES_SHOWN) {
            if let Some((view, action)) = &x.live {
                out.push_str(&format!("- `{} {}` → `{view}` {action}\n", x.verb, x.path));
            }
        }
    }
    if !other.is_empty() {
        out.push_str("\nOther routes:\n\n");
        for x in other.iter().take(ROUTES_SHOWN) {
            out.push_str(&format!(
                "- `{} {}` → `{}` {}\n",
                x.verb, x.path, x.plug, x.action
            ));
        }
    }
    let shown = live.len().min(ROUTES_SHOWN) + other.len().min(ROUTES_SHOWN);
    if (shown as i64) < r.count {
        out.push_str(&format!("- … ({} more)\n", r.count - shown as i64));
    }
    out
}

fn endpoint_block(module: &str, e: &EndpointOnNode) -> String {
    let mut out = format!("\nEndpoint `{module}` on `{}`", e.node);
    if let Some(u) = &e.url {
        out.push_str(&format!(" · {u}"));
    }
    out.push_str(&format!(
        " · adapter `{}`",
        e.adapter.as_deref().unwrap_or("Phoenix's default")
    ));
    if let Some(p) = &e.port {
        out.push_str(&format!(" · port {p}"));
    }
    if let Some(s) = &e.server {
        out.push_str(&format!(" · server {s}"));
    }
    if let Some(pid) = &e.pid {
        out.push_str(&format!(" · running as {pid}"));
        if let Some(r) = &e.runs {
            out.push_str(&format!(" (`{r}`)"));
        }
    }
    out.push('\n');
    out
}

/// Inlay hint for a LiveView: `2 views · %{count: 3, …}`.
pub fn view_hint(p: &PhoenixSnapshot, module: &str) -> Option<String> {
    let views = p.views.get(module)?;
    let n = views.len();
    let mut s = format!("{n} view{}", if n == 1 { "" } else { "s" });
    if let Some(v) = views.first().filter(|v| !v.assigns_compact.is_empty()) {
        s.push_str(" · ");
        s.push_str(&v.assigns_compact);
    }
    Some(s)
}

//! Orrery's custom requests (`orrery/*`), mapped onto the core and the live views.

use super::Backend;
use crate::core::Core;
use crate::live::views;
use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};

fn failed(msg: String) -> Error {
    let mut e = Error::internal_error();
    e.message = msg.into();
    e
}

fn session(core: &Core) -> Result<crate::attach::Session> {
    core.session()
        .ok_or_else(|| failed("Orrery is not attached to a node yet".into()))
}

/// `orrery.inspectState` / `orrery/state` with a target: `"KV.Bucket"`, or
/// `{"target": "Todo.Server", "key": "\"bob\""}` (a pid, a name tuple, a module and a key).
pub async fn state_of(core: &Core, target: Value) -> Result<Value> {
    let (text, key) = match &target {
        Value::String(s) => (s.as_str(), None),
        v => (
            v.get("target").and_then(|t| t.as_str()).unwrap_or_default(),
            v.get("key").and_then(|k| k.as_str()),
        ),
    };
    let target = core.target(text, key);
    views::state(&session(core)?, &target).await.map_err(failed)
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ProcessesParams {
    pub sort: Option<String>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct EtsParams {
    pub tables: Vec<String>,
    pub table: Option<String>,
    pub rows: Option<i64>,
}

impl Backend {
    // Every request takes `null`, `{}` or no params alike (the transport turns omitted
    // params into `null`; see `guard`).
    pub(super) async fn status(&self, _: Option<Value>) -> Result<Value> {
        Ok(self.core.status_json().await)
    }

    pub(super) async fn processes(&self, p: Option<ProcessesParams>) -> Result<Value> {
        let p = p.unwrap_or_default();
        views::processes(
            &session(&self.core)?,
            p.sort.as_deref().unwrap_or("memory"),
            p.offset.unwrap_or(0),
            p.limit.unwrap_or(50),
        )
        .await
        .map_err(failed)
    }

    pub(super) async fn state(&self, p: Value) -> Result<Value> {
        state_of(&self.core, p).await
    }

    pub(super) async fn ets(&self, p: Option<EtsParams>) -> Result<Value> {
        let p = p.unwrap_or_default();
        let mut tables = p.tables;
        tables.extend(p.table);
        views::ets(&session(&self.core)?, &tables, p.rows.unwrap_or(10))
            .await
            .map_err(failed)
    }

    pub(super) async fn supervision_tree(&self, _: Option<Value>) -> Result<Value> {
        views::supervision_tree(&session(&self.core)?)
            .await
            .map_err(failed)
    }
}

//! Conversions between LSP types and the index's protocol-free types.

use crate::workspace::index;
use std::path::{Path, PathBuf};
use tower_lsp_server::ls_types::{Position, Range, Uri};

pub fn to_path(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|p| p.into_owned())
}

pub fn uri_of(path: &Path) -> Option<Uri> {
    Uri::from_file_path(path)
}

pub fn pos(p: index::Position) -> Position {
    Position {
        line: p.line,
        character: p.character,
    }
}

pub fn range(r: index::Range) -> Range {
    Range {
        start: pos(r.start),
        end: pos(r.end),
    }
}

pub fn from_pos(p: Position) -> index::Position {
    index::Position {
        line: p.line,
        character: p.character,
    }
}

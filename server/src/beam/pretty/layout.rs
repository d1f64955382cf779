//! Layout of [`Doc`] trees: one line when it fits in [`WIDTH`] columns,
//! otherwise broken like Elixir's `Inspect.Algebra` containers.

use super::ELLIPSIS;

/// Target line width.
const WIDTH: usize = 80;

pub(super) fn width(s: &str) -> usize {
    s.chars().count()
}

/// Layout tree: text, concatenation, and bracketed groups that may break.
pub(super) enum Doc {
    Text(String),
    Concat(Vec<Doc>),
    /// `flex` groups fill lines (tuples, and lists of plain values); others put
    /// each item on its own line.
    Group {
        open: String,
        items: Vec<Doc>,
        close: String,
        flex: bool,
    },
}

pub(super) fn group(open: &str, items: Vec<Doc>, close: &str, flex: bool) -> Doc {
    let flex = flex || items.iter().all(|i| matches!(i, Doc::Text(_)));
    Doc::Group {
        open: open.to_string(),
        items,
        close: close.to_string(),
        flex,
    }
}

pub(super) fn ellipsis() -> Doc {
    Doc::Text(ELLIPSIS.to_string())
}

pub(super) fn ends_cut(items: &[Doc]) -> bool {
    matches!(items.last(), Some(Doc::Text(s)) if s == ELLIPSIS)
}

fn flat_width(doc: &Doc) -> usize {
    match doc {
        Doc::Text(s) => width(s),
        Doc::Concat(parts) => parts.iter().map(flat_width).sum(),
        Doc::Group {
            open, items, close, ..
        } => {
            width(open)
                + width(close)
                + items.iter().map(flat_width).sum::<usize>()
                + 2 * items.len().saturating_sub(1)
        }
    }
}

/// Width `docs` need on the current line before they can break, plus `tail`
/// when they cannot break at all.
fn head_width(docs: &[Doc], tail: usize) -> usize {
    let mut w = 0;
    for doc in docs {
        match doc {
            Doc::Text(s) => w += width(s),
            Doc::Group { items, .. } if items.is_empty() => w += flat_width(doc),
            Doc::Group {
                open, items, flex, ..
            } => {
                return w + width(open) + if *flex { head_width(&items[..1], 0) } else { 0 };
            }
            Doc::Concat(parts) => return w + head_width(parts, 0),
        }
    }
    w + tail
}

pub(super) fn flat(doc: &Doc, out: &mut String) {
    match doc {
        Doc::Text(s) => out.push_str(s),
        Doc::Concat(parts) => parts.iter().for_each(|p| flat(p, out)),
        Doc::Group {
            open, items, close, ..
        } => {
            out.push_str(open);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flat(item, out);
            }
            out.push_str(close);
        }
    }
}

fn newline(indent: usize, col: &mut usize, out: &mut String) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', indent));
    *col = indent;
}

/// Renders `doc` at column `col` on a line indented by `indent`; `tail` is the
/// width of text that must follow on the same line.
pub(super) fn render(doc: &Doc, indent: usize, col: &mut usize, tail: usize, out: &mut String) {
    match doc {
        Doc::Text(s) => {
            out.push_str(s);
            *col += width(s);
        }
        Doc::Concat(parts) => {
            for (i, part) in parts.iter().enumerate() {
                render(part, indent, col, head_width(&parts[i + 1..], tail), out);
            }
        }
        Doc::Group {
            open,
            items,
            close,
            flex,
        } => {
            let w = flat_width(doc);
            if items.is_empty() || *col + w + tail <= WIDTH {
                flat(doc, out);
                *col += w;
                return;
            }
            out.push_str(open);
            *col += width(open);
            if *flex {
                // Like inspect: items stay on the line while they fit flat,
                // aligned after the bracket.
                let nest = if *col <= WIDTH / 2 { *col } else { indent + 1 };
                for (i, item) in items.iter().enumerate() {
                    let last = i + 1 == items.len();
                    let after = if last { width(close) + tail } else { 1 };
                    if i > 0 {
                        if *col + 1 + flat_width(item) + after <= WIDTH {
                            out.push(' ');
                            *col += 1;
                        } else {
                            newline(nest, col, out);
                        }
                    }
                    render(item, nest, col, after, out);
                    if !last {
                        out.push(',');
                        *col += 1;
                    }
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    newline(indent + 2, col, out);
                    let last = i + 1 == items.len();
                    render(item, indent + 2, col, usize::from(!last), out);
                    if !last {
                        out.push(',');
                        *col += 1;
                    }
                }
                newline(indent, col, out);
            }
            out.push_str(close);
            *col += width(close);
        }
    }
}

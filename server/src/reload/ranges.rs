//! Where a compiler diagnostic sits in its file's text, as a range of 0-based lines and
//! UTF-16 columns. The compiler counts columns in characters, 1-based. With a span (Elixir
//! 1.15+) the range is exactly the text the compiler means; with only a column it covers
//! the token there (an identifier, a keyword), else the rest of the line; with neither
//! (Elixir 1.14 gives lines only) the line's text, without its indentation.

use super::compile_node::Diagnostic;
use crate::workspace::index::{Position, Range};

/// The end of a line whose text is unknown: LSP clients take a column past the end as the
/// end (the largest column the protocol allows).
const LINE_END: u32 = i32::MAX as u32;

/// The range of `d` in `text` (the file's current text; `None` when unknown).
pub fn range(d: &Diagnostic, text: Option<&str>) -> Range {
    let line = d.line.saturating_sub(1);
    let line_text = text.and_then(|t| t.lines().nth(line as usize));
    let Some(lt) = line_text else {
        // Nothing to measure against: the column's character, else the whole line.
        let start = d.column.saturating_sub(1);
        let end = if d.column == 0 { LINE_END } else { start + 1 };
        return Range {
            start: Position::new(line, start),
            end: Position::new(line, end),
        };
    };
    if d.column == 0 {
        let first = lt.chars().take_while(|c| c.is_whitespace()).count();
        let last = lt.trim_end().chars().count().max(first);
        return Range {
            start: Position::new(line, utf16(lt, first)),
            end: Position::new(line, utf16(lt, last)),
        };
    }
    let start_char = (d.column - 1) as usize;
    let start = Position::new(line, utf16(lt, start_char));
    let end = match d.end {
        Some((el, ec)) => {
            let el = el - 1;
            let end_text = text.and_then(|t| t.lines().nth(el as usize)).unwrap_or("");
            Position::new(el, utf16(end_text, (ec - 1) as usize))
        }
        None => {
            let token = lt
                .chars()
                .skip(start_char)
                .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '?' | '!'))
                .count();
            let end_char = if token > 0 {
                start_char + token
            } else {
                lt.trim_end().chars().count().max(start_char + 1)
            };
            Position::new(line, utf16(lt, end_char))
        }
    };
    Range {
        start,
        end: end.max(start),
    }
}

/// The UTF-16 column of character `chars` of `line` (its end when past it).
fn utf16(line: &str, chars: usize) -> u32 {
    line.chars().take(chars).map(|c| c.len_utf16() as u32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::compile_node::Severity;

    fn diag(line: u32, column: u32, end: Option<(u32, u32)>) -> Diagnostic {
        Diagnostic {
            file: "f.ex".into(),
            line,
            column,
            end,
            severity: Severity::Warning,
            message: String::new(),
        }
    }

    fn text_of(r: Range, text: &str) -> String {
        let lines: Vec<Vec<u16>> = text.lines().map(|l| l.encode_utf16().collect()).collect();
        let (s, e) = (r.start, r.end);
        if s.line == e.line {
            let l = &lines[s.line as usize];
            let end = (e.character as usize).min(l.len());
            String::from_utf16(&l[s.character as usize..end]).unwrap()
        } else {
            format!("{}..{}", s.line, e.line)
        }
    }

    const SRC: &str = "defmodule W do\n  def f(x) do\n    unused = x * 2\n    h😀 = undefined_thing + x\n  end\nend\n";

    #[test]
    fn a_span_covers_exactly_its_text() {
        let r = range(&diag(3, 5, Some((3, 11))), Some(SRC));
        assert_eq!(text_of(r, SRC), "unused");
        // Columns count characters; the range counts UTF-16 units.
        let r = range(&diag(4, 10, Some((4, 25))), Some(SRC));
        assert_eq!(text_of(r, SRC), "undefined_thing");
        assert_eq!(r.start.character, 10);
    }

    #[test]
    fn a_column_alone_covers_its_token_or_the_rest_of_the_line() {
        let r = range(&diag(4, 10, None), Some(SRC));
        assert_eq!(text_of(r, SRC), "undefined_thing");
        let r = range(&diag(3, 12, None), Some(SRC));
        assert_eq!(text_of(r, SRC), "= x * 2");
    }

    #[test]
    fn a_line_alone_covers_the_line_without_indentation() {
        let r = range(&diag(3, 0, None), Some(SRC));
        assert_eq!(text_of(r, SRC), "unused = x * 2");
        assert_eq!(r.start.line, 2);
    }

    #[test]
    fn without_text_or_past_the_end() {
        let r = range(&diag(3, 5, None), None);
        assert_eq!((r.start.character, r.end.character), (4, 5));
        let r = range(&diag(99, 0, None), Some(SRC));
        assert_eq!((r.start.line, r.end.character), (98, LINE_END));
        // A line of 0 (unknown) is the first line.
        let r = range(&diag(0, 0, None), Some(SRC));
        assert_eq!(text_of(r, SRC), "defmodule W do");
    }
}

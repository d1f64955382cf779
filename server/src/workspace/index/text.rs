//! Byte offsets ↔ LSP positions.
//!
//! tree-sitter reports byte offsets and byte columns; LSP wants 0-based lines and UTF-16 code
//! unit columns. Lines are split on `\n` only (a `\r` before it stays part of the line, which
//! never changes the column of anything before it).

use super::{Position, Range};

/// Line start table for one source text.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self { src, starts }
    }

    /// LSP position of a byte offset (clamped to the text, floored to a char boundary).
    pub(crate) fn position(&self, byte: usize) -> Position {
        let mut byte = byte.min(self.src.len());
        while !self.src.is_char_boundary(byte) {
            byte -= 1;
        }
        let line = self
            .starts
            .partition_point(|&s| s <= byte)
            .saturating_sub(1);
        let start = self.starts[line];
        let character: usize = self.src[start..byte].chars().map(char::len_utf16).sum();
        Position {
            line: line as u32,
            character: character as u32,
        }
    }

    /// Byte offset of an LSP position. A column past the end of the line clamps to the line
    /// end; a column inside a surrogate pair maps to the start of that character; a line past
    /// the end of the text gives `None`.
    pub(crate) fn offset(&self, pos: Position) -> Option<usize> {
        let line = pos.line as usize;
        let start = *self.starts.get(line)?;
        let end = match self.starts.get(line + 1) {
            Some(next) => next - 1,
            None => self.src.len(),
        };
        let mut units = 0u32;
        for (i, ch) in self.src[start..end].char_indices() {
            let next = units + ch.len_utf16() as u32;
            if pos.character < next {
                return Some(start + i);
            }
            units = next;
        }
        Some(end)
    }

    pub(crate) fn range(&self, bytes: std::ops::Range<usize>) -> Range {
        Range {
            start: self.position(bytes.start),
            end: self.position(bytes.end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn ascii_round_trip() {
        let src = "ab\ncd\n";
        let li = LineIndex::new(src);
        assert_eq!(li.position(0), p(0, 0));
        assert_eq!(li.position(2), p(0, 2));
        assert_eq!(li.position(3), p(1, 0));
        assert_eq!(li.position(6), p(2, 0));
        assert_eq!(li.offset(p(1, 1)), Some(4));
        assert_eq!(li.offset(p(1, 99)), Some(5));
        assert_eq!(li.offset(p(2, 0)), Some(6));
        assert_eq!(li.offset(p(3, 0)), None);
    }

    #[test]
    fn utf16_columns() {
        // é is 2 bytes / 1 unit, 😀 is 4 bytes / 2 units.
        let src = "é😀x\n";
        let li = LineIndex::new(src);
        let x = src.find('x').unwrap();
        assert_eq!(li.position(x), p(0, 3));
        assert_eq!(li.offset(p(0, 3)), Some(x));
        assert_eq!(li.offset(p(0, 1)), Some(2));
        // inside the surrogate pair: start of the emoji
        assert_eq!(li.offset(p(0, 2)), Some(2));
        // a byte offset inside a char floors to its start
        assert_eq!(li.position(3), p(0, 1));
        assert_eq!(li.position(1000), p(1, 0));
    }
}

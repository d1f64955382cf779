//! Open documents as ropes, with incremental edits in LSP coordinates (0-based lines,
//! UTF-16 code units).

use ropey::Rope;

/// An open document.
#[derive(Debug, Clone)]
pub struct Document {
    pub rope: Rope,
    pub version: i32,
}

/// A position in LSP coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub utf16: u32,
}

impl Document {
    /// A document with the given text.
    pub fn new(text: &str, version: i32) -> Self {
        Self {
            rope: Rope::from_str(text),
            version,
        }
    }

    /// Size of the text in bytes.
    pub fn len_bytes(&self) -> usize {
        self.rope.len_bytes()
    }

    /// The whole text.
    pub fn text(&self) -> String {
        self.rope.to_string()
    }

    /// Char index of an LSP position, clamped into the document.
    pub fn char_index(&self, p: Pos) -> usize {
        let lines = self.rope.len_lines();
        if p.line as usize >= lines {
            return self.rope.len_chars();
        }
        let line_start = self.rope.line_to_char(p.line as usize);
        let line = self.rope.line(p.line as usize);
        let mut units = 0u32;
        for (i, c) in line.chars().enumerate() {
            if units >= p.utf16 || c == '\n' || c == '\r' {
                return line_start + i;
            }
            units += c.len_utf16() as u32;
        }
        line_start + line.len_chars()
    }

    /// Replace the range `start..end` (or everything, when `None`) with `text`.
    pub fn apply(&mut self, range: Option<(Pos, Pos)>, text: &str, version: i32) {
        match range {
            None => self.rope = Rope::from_str(text),
            Some((s, e)) => {
                let a = self.char_index(s);
                let b = self.char_index(e).max(a);
                self.rope.remove(a..b);
                self.rope.insert(a, text);
            }
        }
        self.version = version;
    }

    /// The text of line `n` without its line ending.
    pub fn line(&self, n: u32) -> String {
        if n as usize >= self.rope.len_lines() {
            return String::new();
        }
        let s = self.rope.line(n as usize).to_string();
        s.trim_end_matches(['\n', '\r']).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_edits_in_utf16() {
        let mut d = Document::new("défaut\nb😀c\n", 1);
        // Replace "c" after the emoji (2 UTF-16 units) on line 1.
        d.apply(
            Some((Pos { line: 1, utf16: 3 }, Pos { line: 1, utf16: 4 })),
            "X",
            2,
        );
        assert_eq!(d.text(), "défaut\nb😀X\n");
        d.apply(
            Some((Pos { line: 0, utf16: 1 }, Pos { line: 0, utf16: 2 })),
            "e",
            3,
        );
        assert_eq!(d.line(0), "defaut");
        d.apply(None, "new", 4);
        assert_eq!(d.text(), "new");
        // Out-of-range positions clamp instead of panicking.
        d.apply(
            Some((Pos { line: 9, utf16: 9 }, Pos { line: 10, utf16: 0 })),
            "!",
            5,
        );
        assert_eq!(d.text(), "new!");
    }
}

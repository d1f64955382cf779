//! Characters and numbers as Elixir writes them: printable text, escapes in literals,
//! floats like `inspect`.

/// Characters `String.printable?/1` accepts (Elixir 1.14).
pub(super) fn printable(c: char) -> bool {
    matches!(c as u32, 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        || "\n\r\t\u{0B}\u{08}\u{0C}\u{1B}\u{7F}\u{07}".contains(c)
}

/// Characters of lists that inspect shows as charlists (printable ASCII).
pub(super) fn charlist_char(c: char) -> bool {
    c.is_ascii() && printable(c) && c != '\u{7F}'
}

/// Printable characters Elixir's tokenizer cannot take raw in a literal:
/// bidirectional formatting (rejected), and grapheme-cluster "Prepend"
/// characters, which glue to a following quote or backslash.
fn unsafe_raw(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        | '\u{600}'..='\u{605}' | '\u{6DD}' | '\u{70F}' | '\u{890}' | '\u{891}' | '\u{8E2}'
        | '\u{D4E}' | '\u{110BD}' | '\u{110CD}' | '\u{111C2}' | '\u{111C3}' | '\u{1193F}'
        | '\u{11941}' | '\u{11A3A}' | '\u{11A84}'..='\u{11A89}' | '\u{11D46}' | '\u{11F02}')
}

/// Escapes `s` for a literal delimited by `delim` (`"` or `'`).
pub(super) fn escape(s: &str, delim: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '#' if chars.peek() == Some(&'{') => out.push_str("\\#"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\u{1B}' => out.push_str("\\e"),
            '\u{7F}' => out.push_str("\\d"),
            '\u{07}' => out.push_str("\\a"),
            c if c == delim => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x80 && !printable(c) => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c if !printable(c) || unsafe_raw(c) => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Floats like Elixir 1.14's `inspect`: integral values below 1e16 in full,
/// otherwise the shortest round-tripping digits laid out like
/// `:erlang.float_to_list(f, [:short])` (erts' Ryu `to_chars`).
pub(super) fn float_to_elixir(v: f64) -> String {
    if !v.is_finite() {
        // Not representable on the BEAM; only reachable from hand-built terms.
        return format!("{v}");
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let a = v.abs();
    if a == 0.0 || (1.0..1.0e16).contains(&a) && a.fract() == 0.0 {
        return format!("{sign}{a:.1}");
    }
    let sci = format!("{a:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i64;
    let ryu_exp = exp - (n - 1);
    let (lower, upper) = if n == 1 {
        (-4, 2)
    } else {
        (-(n + 2), if exp >= 10 { 2 } else { 1 })
    };
    let m: u64 = digits.parse().unwrap_or(0);
    let inexact = (ryu_exp == 0 && m >= 1 << 53)
        || (ryu_exp == 1 && m > (1 << 52) / 5)
        || (ryu_exp == 2 && m > (1 << 51) / 25);
    let whole = n + ryu_exp;
    let body = if !(lower..=upper).contains(&ryu_exp) || inexact {
        let frac = if n > 1 { &digits[1..] } else { "0" };
        format!("{}.{frac}e{exp}", &digits[..1])
    } else if ryu_exp >= 0 {
        format!("{digits}{}.0", "0".repeat(ryu_exp as usize))
    } else if whole > 0 {
        let (int, frac) = digits.split_at(whole as usize);
        format!("{int}.{frac}")
    } else {
        format!("0.{}{digits}", "0".repeat(-whole as usize))
    };
    format!("{sign}{body}")
}

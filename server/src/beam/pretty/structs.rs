//! Elixir's own inspect forms of standard structs: `~D[2024-01-01]`, `~T[09:15:00]`,
//! `~N[..]`, `~U[..Z]` (`#DateTime<..>` in another zone), `MapSet.new([..])` (Elixir
//! 1.14+; older versions print `#MapSet<[..]>`), ranges `1..10` / `1..10//2` and
//! `~r/../opts`. Only for a map that is exactly such a struct with nothing the form needs
//! cut by the agent; otherwise `None` and the map prints as `%Name{..}`.

use super::layout::Doc;
use super::{cmp_terms, is_marker, Printer, TRUNC_BIN};
use eetf::{Atom, Map, Term};

fn get<'m>(m: &'m Map, key: &str) -> Option<&'m Term> {
    m.map.get(&Term::from(Atom::from(key)))
}

fn int(m: &Map, key: &str) -> Option<i64> {
    match get(m, key)? {
        Term::FixInteger(i) => Some(i.value.into()),
        _ => None,
    }
}

fn is_atom(m: &Map, key: &str, want: &str) -> bool {
    matches!(get(m, key), Some(Term::Atom(a)) if a.name == want)
}

fn text(m: &Map, key: &str) -> Option<String> {
    match get(m, key)? {
        Term::Binary(b) => String::from_utf8(b.bytes.clone()).ok(),
        _ => None,
    }
}

/// The struct has exactly these fields (besides `__struct__`).
fn fields(m: &Map, keys: &[&str]) -> bool {
    m.map.len() == keys.len() + 1 && keys.iter().all(|k| get(m, k).is_some())
}

fn iso(m: &Map) -> bool {
    is_atom(m, "calendar", "Elixir.Calendar.ISO")
}

/// Zero-padded like `Calendar.ISO` (`-0005` for year -5).
fn pad(n: i64, width: usize) -> String {
    if n < 0 {
        format!("-{:0width$}", -n)
    } else {
        format!("{n:0width$}")
    }
}

fn date(m: &Map) -> Option<String> {
    let (y, mo, d) = (int(m, "year")?, int(m, "month")?, int(m, "day")?);
    Some(format!("{}-{}-{}", pad(y, 4), pad(mo, 2), pad(d, 2)))
}

fn time(m: &Map) -> Option<String> {
    let (h, mi, s) = (int(m, "hour")?, int(m, "minute")?, int(m, "second")?);
    let frac = match get(m, "microsecond")? {
        Term::Tuple(t) => match t.elements.as_slice() {
            [Term::FixInteger(us), Term::FixInteger(p)] if (0..=6).contains(&p.value) => {
                let digits = pad(us.value.into(), 6);
                if p.value == 0 {
                    String::new()
                } else {
                    format!(".{}", &digits[..p.value as usize])
                }
            }
            _ => return None,
        },
        _ => return None,
    };
    Some(format!("{}:{}:{}{frac}", pad(h, 2), pad(mi, 2), pad(s, 2)))
}

const DATE: &[&str] = &["calendar", "year", "month", "day"];
const TIME: &[&str] = &["calendar", "hour", "minute", "second", "microsecond"];
const NAIVE: &[&str] = &[
    "calendar",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "microsecond",
];
const ZONE: &[&str] = &["time_zone", "zone_abbr", "utc_offset", "std_offset"];

fn datetime(m: &Map) -> Option<String> {
    let keys: Vec<&str> = NAIVE.iter().chain(ZONE).copied().collect();
    if !fields(m, &keys) || !iso(m) {
        return None;
    }
    let (zone, abbr) = (text(m, "time_zone")?, text(m, "zone_abbr")?);
    let (utc, std) = (int(m, "utc_offset")?, int(m, "std_offset")?);
    let at = format!("{} {}", date(m)?, time(m)?);
    if utc == 0 && std == 0 && zone == "Etc/UTC" {
        return Some(format!("~U[{at}Z]"));
    }
    let total = utc + std;
    let sign = if total < 0 { '-' } else { '+' };
    let secs = total.abs();
    let offset = format!("{sign}{}:{}", pad(secs / 3600, 2), pad(secs % 3600 / 60, 2));
    Some(format!("#DateTime<{at}{offset} {abbr} {zone}>"))
}

fn range(m: &Map) -> Option<String> {
    let (first, last) = (int(m, "first")?, int(m, "last")?);
    match int(m, "step") {
        Some(1) if last >= first && fields(m, &["first", "last", "step"]) => {
            Some(format!("{first}..{last}"))
        }
        Some(step) if fields(m, &["first", "last", "step"]) => {
            Some(format!("{first}..{last}//{step}"))
        }
        // Ranges of Elixir before 1.12 have no step.
        None if fields(m, &["first", "last"]) => Some(format!("{first}..{last}")),
        _ => None,
    }
}

/// `~r/source/opts`, escaped like `Inspect.Regex`; a source the agent cut ends in `…`.
fn regex(m: &Map) -> Option<String> {
    // A binary of modifiers ("i"), or (Elixir 1.18+) the compile options they stand for.
    let opts = match get(m, "opts")? {
        Term::List(l) => modifiers(&l.elements)?,
        _ => text(m, "opts")?,
    };
    let (source, cut) = match get(m, "source")? {
        Term::Binary(b) => (String::from_utf8(b.bytes.clone()).ok()?, false),
        Term::Tuple(t) => match t.elements.as_slice() {
            [Term::Atom(a), Term::Binary(b), _] if a.name == TRUNC_BIN => {
                (String::from_utf8_lossy(&b.bytes).into_owned(), true)
            }
            _ => return None,
        },
        _ => return None,
    };
    let mut out = String::from("~r/");
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                chars.next();
                out.push_str("\\/");
            }
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    if cut {
        out.push_str(super::ELLIPSIS);
    }
    out.push('/');
    out.push_str(&opts);
    Some(out)
}

/// The `~r` modifiers of a regex's compile options; `None` for an option no modifier
/// gives (then the struct prints as it is).
fn modifiers(opts: &[Term]) -> Option<String> {
    let mut out = String::new();
    for o in opts {
        let m = match o {
            Term::Atom(a) => match a.name.as_str() {
                "unicode" | "ucp" => 'u',
                "caseless" => 'i',
                "extended" => 'x',
                "firstline" => 'f',
                "ungreedy" => 'U',
                "dotall" => 's',
                "multiline" => 'm',
                _ => return None,
            },
            // `s` also sets `{:newline, :anycrlf}`.
            Term::Tuple(t)
                if matches!(t.elements.as_slice(),
                [Term::Atom(k), Term::Atom(v)] if k.name == "newline" && v.name == "anycrlf") =>
            {
                continue
            }
            _ => return None,
        };
        if !out.contains(m) {
            out.push(m);
        }
    }
    Some(out)
}

impl Printer<'_> {
    /// `MapSet.new([..])`: its elements are the keys of its `map`, in term order.
    fn mapset(&mut self, m: &Map, depth: usize) -> Option<Doc> {
        let ok = fields(m, &["map", "version"]) || fields(m, &["map"]);
        let Some(Term::Map(set)) = get(m, "map").filter(|_| ok) else {
            return None;
        };
        let mut elems: Vec<Term> = set.map.keys().filter(|k| !is_marker(k)).cloned().collect();
        elems.sort_by(|a, b| cmp_terms(a, b, 0));
        if elems.len() < set.map.len() {
            elems.push(Term::from(Atom::from(super::TRUNC)));
        }
        let list = self.list(&elems, None, depth);
        Some(Doc::Concat(vec![
            Doc::Text("MapSet.new(".into()),
            list,
            Doc::Text(")".into()),
        ]))
    }

    /// The inspect form of struct `name`, when it has one here.
    pub(super) fn special_struct(&mut self, name: &str, m: &Map, depth: usize) -> Option<Doc> {
        let s = match name {
            "Elixir.Date" if fields(m, DATE) && iso(m) => format!("~D[{}]", date(m)?),
            "Elixir.Time" if fields(m, TIME) && iso(m) => format!("~T[{}]", time(m)?),
            "Elixir.NaiveDateTime" if fields(m, NAIVE) && iso(m) => {
                format!("~N[{} {}]", date(m)?, time(m)?)
            }
            "Elixir.DateTime" => datetime(m)?,
            "Elixir.Range" => range(m)?,
            "Elixir.Regex" => regex(m)?,
            "Elixir.MapSet" => return self.mapset(m, depth),
            _ => return None,
        };
        Some(self.text(s))
    }
}

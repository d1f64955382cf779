//! A bound on how deep the terms a node sends us can be, checked on the wire before eetf
//! (whose decoder, like every walk over a `Term`, recurses) sees them. The walk here is
//! iterative: a message whose terms nest deeper than [`MAX_DEPTH`] is rewritten with each
//! subterm at that depth replaced by the truncation marker `'$orrery_trunc'` (rendered as
//! a cut; writes refuse terms that carry it). A GenServer state nested 10,000 levels deep
//! is shown cut, and never overflows a stack.

use std::borrow::Cow;

/// Deepest nesting we decode.
pub const MAX_DEPTH: usize = 512;
/// What stands in for a cut subterm.
pub const MARKER: &str = "$orrery_trunc";
const VERSION: u8 = 131;

fn u8_at(b: &[u8], p: usize) -> Option<usize> {
    b.get(p).map(|&x| x as usize)
}
fn u16_at(b: &[u8], p: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(p..p + 2)?.try_into().ok()?) as usize)
}
fn u32_at(b: &[u8], p: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?) as usize)
}

/// End of the atom starting at `p`.
fn atom_end(b: &[u8], p: usize) -> Option<usize> {
    match *b.get(p)? {
        100 | 118 => Some(p + 3 + u16_at(b, p + 1)?),
        115 | 119 => Some(p + 2 + u8_at(b, p + 1)?),
        _ => None,
    }
}

/// The term starting at `p`: `Leaf(end)`, or a container whose `n` children start at `next`.
enum Shape {
    Leaf(usize),
    Node { next: usize, n: u64 },
}

fn shape(b: &[u8], p: usize) -> Option<Shape> {
    use Shape::*;
    let leaf = |end: usize| (end <= b.len()).then_some(Leaf(end));
    match *b.get(p)? {
        70 => leaf(p + 9),
        97 => leaf(p + 2),
        98 => leaf(p + 5),
        99 => leaf(p + 32),
        106 => leaf(p + 1),
        100 | 115 | 118 | 119 => leaf(atom_end(b, p)?),
        107 => leaf(p + 3 + u16_at(b, p + 1)?),
        109 => leaf(p + 5 + u32_at(b, p + 1)?),
        77 => leaf(p + 6 + u32_at(b, p + 1)?),
        110 => leaf(p + 3 + u8_at(b, p + 1)?),
        111 => leaf(p + 6 + u32_at(b, p + 1)?),
        88 => leaf(atom_end(b, p + 1)? + 12),
        89 => leaf(atom_end(b, p + 1)? + 8),
        120 => leaf(atom_end(b, p + 1)? + 12),
        101 => leaf(atom_end(b, p + 1)? + 5),
        102 => leaf(atom_end(b, p + 1)? + 5),
        103 => leaf(atom_end(b, p + 1)? + 9),
        90 => leaf(atom_end(b, p + 3)? + 4 + 4 * u16_at(b, p + 1)?),
        114 => leaf(atom_end(b, p + 3)? + 1 + 4 * u16_at(b, p + 1)?),
        104 => Some(Node {
            next: p + 2,
            n: u8_at(b, p + 1)? as u64,
        }),
        105 => Some(Node {
            next: p + 5,
            n: u32_at(b, p + 1)? as u64,
        }),
        108 => Some(Node {
            next: p + 5,
            n: u32_at(b, p + 1)? as u64 + 1,
        }),
        116 => Some(Node {
            next: p + 5,
            n: 2 * u32_at(b, p + 1)? as u64,
        }),
        // module, function, arity
        113 => Some(Node { next: p + 1, n: 3 }),
        // size, arity, uniq, index, numfree; then module, old index, old uniq, pid, free vars
        112 => Some(Node {
            next: p + 30,
            n: 4 + u32_at(b, p + 26)? as u64,
        }),
        // numfree; then pid, module, index, uniq, free vars
        117 => Some(Node {
            next: p + 5,
            n: 4 + u32_at(b, p + 1)? as u64,
        }),
        _ => None,
    }
}

fn marker(out: &mut Vec<u8>) {
    out.push(119);
    out.push(MARKER.len() as u8);
    out.extend_from_slice(MARKER.as_bytes());
}

/// Walk the term at `p`: its end and how deep it nests. With `out`, copy it there with
/// every subterm at depth `limit` replaced by the marker (a fun deeper than that is
/// replaced whole: its byte size is in its header).
fn walk(
    b: &[u8],
    mut p: usize,
    limit: usize,
    mut out: Option<&mut Vec<u8>>,
) -> Option<(usize, usize)> {
    let mut stack: Vec<u64> = vec![];
    let mut max = 0;
    loop {
        let depth = stack.len();
        max = max.max(depth);
        match out.as_deref_mut() {
            Some(o) if depth >= limit => {
                p = walk(b, p, usize::MAX, None)?.0;
                marker(o);
            }
            Some(o) if b.get(p) == Some(&112) => {
                let end = p + 1 + u32_at(b, p + 1)?;
                let (fun_end, d) = walk(b, p, usize::MAX, None)?;
                if fun_end != end {
                    return None;
                }
                if depth + d >= limit {
                    marker(o);
                } else {
                    o.extend_from_slice(b.get(p..end)?);
                }
                p = end;
            }
            o => match shape(b, p)? {
                Shape::Leaf(end) => {
                    if let Some(o) = o {
                        o.extend_from_slice(b.get(p..end)?);
                    }
                    p = end;
                }
                Shape::Node { next, n } => {
                    if let Some(o) = o {
                        o.extend_from_slice(b.get(p..next)?);
                    }
                    p = next;
                    if n > 0 {
                        stack.push(n);
                        continue;
                    }
                }
            },
        }
        // One term done: pop the containers it completed.
        loop {
            match stack.last_mut() {
                None => return Some((p, max)),
                Some(top) => {
                    *top -= 1;
                    if *top > 0 {
                        break;
                    }
                    stack.pop();
                }
            }
        }
    }
}

/// The terms of a distribution message body (each `131 ...`), bounded to `limit` levels.
/// Unchanged (borrowed) when they fit, or when they are not plain external terms (eetf
/// then reports them).
pub fn bound(body: &[u8], limit: usize) -> Cow<'_, [u8]> {
    let mut p = 0;
    let mut deep = false;
    while p < body.len() {
        if body[p] != VERSION {
            return Cow::Borrowed(body);
        }
        match walk(body, p + 1, limit, None) {
            Some((end, d)) => {
                deep |= d >= limit;
                p = end;
            }
            None => return Cow::Borrowed(body),
        }
    }
    if !deep {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len().min(1 << 20));
    let mut p = 0;
    while p < body.len() {
        out.push(VERSION);
        match walk(body, p + 1, limit, Some(&mut out)) {
            Some((end, _)) => p = end,
            None => return Cow::Borrowed(body),
        }
    }
    Cow::Owned(out)
}

/// An error when `t` was cut here: a write must not put a cut copy back on the node.
pub fn refuse_cut(t: &eetf::Term, what: &str) -> Result<(), String> {
    if super::term::contains_atom(t, MARKER) {
        return Err(format!(
            "the state of {what} is nested deeper than {MAX_DEPTH} levels: Orrery cannot keep \
             a copy of it to undo the change, so nothing was replaced"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eetf::{Atom, Term, Tuple};

    fn nested(levels: usize) -> Vec<u8> {
        // {:s, {:s, ... :leaf}} built as bytes (eetf's own encoder recurses).
        let mut b = vec![VERSION];
        for _ in 0..levels {
            b.extend_from_slice(&[104, 2, 119, 1, b's']);
        }
        b.extend_from_slice(&[119, 4]);
        b.extend_from_slice(b"leaf");
        b
    }

    #[test]
    fn shallow_terms_are_untouched() {
        let t = Term::from(Tuple::from(vec![
            Term::from(Atom::from("ok")),
            Term::from(eetf::List::from(vec![Term::from(eetf::FixInteger::from(
                1,
            ))])),
            Term::from(eetf::Binary::from(vec![1, 2, 3])),
        ]));
        let mut b = vec![];
        t.encode(&mut b).unwrap();
        b.extend_from_slice(&b.clone());
        assert!(matches!(bound(&b, 8), Cow::Borrowed(_)));
    }

    #[test]
    fn deep_terms_are_cut_and_decode() {
        let b = nested(100_000);
        let cut = bound(&b, 64);
        let Cow::Owned(cut) = cut else {
            panic!("not cut")
        };
        let t = Term::decode(&cut[..]).unwrap();
        let mut depth = 0;
        let mut cur = &t;
        while let Term::Tuple(tp) = cur {
            depth += 1;
            cur = &tp.elements[1];
        }
        assert_eq!(depth, 64);
        assert_eq!(cur, &Term::from(Atom::from(MARKER)));
    }
}

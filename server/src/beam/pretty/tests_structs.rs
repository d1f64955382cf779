//! The inspect forms of standard structs (`structs.rs`).

use super::*;
use eetf::{Atom, Binary, List, Map, Tuple};

fn atom(s: &str) -> Term {
    Term::from(Atom::from(s))
}
fn i(v: i32) -> Term {
    int(v)
}
fn bin(s: &str) -> Term {
    Term::from(Binary::from(s.as_bytes()))
}
fn tuple(v: Vec<Term>) -> Term {
    Term::from(Tuple::from(v))
}
fn strukt(name: &str, fields: Vec<(&str, Term)>) -> Term {
    let mut m: std::collections::HashMap<Term, Term> =
        fields.into_iter().map(|(k, v)| (atom(k), v)).collect();
    m.insert(atom("__struct__"), atom(name));
    Term::from(Map::from(m))
}
fn show(t: &Term) -> String {
    to_elixir(t, &Limits::hover())
}
fn iso() -> (&'static str, Term) {
    ("calendar", atom("Elixir.Calendar.ISO"))
}
fn date_fields(y: i32, m: i32, d: i32) -> Vec<(&'static str, Term)> {
    vec![iso(), ("year", i(y)), ("month", i(m)), ("day", i(d))]
}
fn time_fields(h: i32, mi: i32, s: i32, us: i32, p: i32) -> Vec<(&'static str, Term)> {
    vec![
        ("hour", i(h)),
        ("minute", i(mi)),
        ("second", i(s)),
        ("microsecond", tuple(vec![i(us), i(p)])),
    ]
}

#[test]
fn dates_and_times_as_sigils() {
    assert_eq!(
        show(&strukt("Elixir.Date", date_fields(2024, 1, 1))),
        "~D[2024-01-01]"
    );
    assert_eq!(
        show(&strukt("Elixir.Date", date_fields(-5, 1, 1))),
        "~D[-0005-01-01]"
    );
    let mut t = time_fields(9, 15, 0, 0, 0);
    t.push(iso());
    assert_eq!(show(&strukt("Elixir.Time", t)), "~T[09:15:00]");
    let mut t = time_fields(9, 15, 0, 0, 3);
    t.push(iso());
    assert_eq!(show(&strukt("Elixir.Time", t)), "~T[09:15:00.000]");
    let mut n = date_fields(2024, 1, 1);
    n.extend(time_fields(12, 30, 0, 250_000, 3));
    assert_eq!(
        show(&strukt("Elixir.NaiveDateTime", n.clone())),
        "~N[2024-01-01 12:30:00.250]"
    );
    let mut utc = n.clone();
    utc.extend([
        ("time_zone", bin("Etc/UTC")),
        ("zone_abbr", bin("UTC")),
        ("utc_offset", i(0)),
        ("std_offset", i(0)),
    ]);
    assert_eq!(
        show(&strukt("Elixir.DateTime", utc)),
        "~U[2024-01-01 12:30:00.250Z]"
    );
    let mut paris = n;
    paris.extend([
        ("time_zone", bin("Europe/Paris")),
        ("zone_abbr", bin("CET")),
        ("utc_offset", i(3600)),
        ("std_offset", i(0)),
    ]);
    assert_eq!(
        show(&strukt("Elixir.DateTime", paris)),
        "#DateTime<2024-01-01 12:30:00.250+01:00 CET Europe/Paris>"
    );
    // Another calendar, or a field missing: the struct as it is.
    let mut other = date_fields(2024, 1, 1);
    other[0] = ("calendar", atom("Elixir.Cal"));
    assert!(show(&strukt("Elixir.Date", other)).starts_with("%Date{"));
    let mut cut = date_fields(2024, 1, 1);
    cut[1] = ("year", atom(TRUNC));
    assert!(show(&strukt("Elixir.Date", cut)).starts_with("%Date{"));
}

#[test]
fn mapsets_ranges_and_regexes() {
    let set = |keys: Vec<Term>| {
        let m: std::collections::HashMap<Term, Term> = keys
            .into_iter()
            .map(|k| (k, Term::from(List::nil())))
            .collect();
        strukt(
            "Elixir.MapSet",
            vec![("map", Term::from(Map::from(m))), ("version", i(2))],
        )
    };
    assert_eq!(
        show(&set(vec![atom("b"), atom("a")])),
        "MapSet.new([:a, :b])"
    );
    assert_eq!(show(&set(vec![])), "MapSet.new([])");
    // Cut by the agent: the elements shown, then the marker.
    assert_eq!(show(&set(vec![i(1), atom(TRUNC)])), "MapSet.new([1, …])");
    let range = |f: i32, l: i32, s: i32| {
        strukt(
            "Elixir.Range",
            vec![("first", i(f)), ("last", i(l)), ("step", i(s))],
        )
    };
    assert_eq!(show(&range(1, 10, 1)), "1..10");
    assert_eq!(show(&range(1, 10, 2)), "1..10//2");
    assert_eq!(show(&range(10, 1, -1)), "10..1//-1");
    assert_eq!(show(&range(-3, -1, 1)), "-3..-1");
    let re = strukt(
        "Elixir.Regex",
        vec![
            ("opts", bin("i")),
            ("source", bin("a/b\\/c+")),
            ("re_pattern", tuple(vec![atom("re_pattern"), i(0)])),
            ("re_version", bin("8.44")),
        ],
    );
    assert_eq!(show(&re), "~r/a\\/b\\/c+/i");
    // Inside containers, and compact.
    let state = Term::from(Map::from(
        [
            (atom("day"), strukt("Elixir.Date", date_fields(2024, 1, 1))),
            (atom("span"), range(1, 10, 1)),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>(),
    ));
    assert_eq!(show(&state), "%{day: ~D[2024-01-01], span: 1..10}");
    assert_eq!(
        to_elixir_compact(&state, 40),
        "%{day: ~D[2024-01-01], span: 1..10}"
    );
    // An unknown struct keeps the %Name{} form.
    assert_eq!(show(&strukt("Elixir.Foo", vec![("a", i(1))])), "%Foo{a: 1}");
}

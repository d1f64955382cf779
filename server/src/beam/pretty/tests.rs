use super::*;
use eetf::{
    Atom, BigInteger, Binary, BitBinary, ByteList, ExternalFun, Float, ImproperList, List, Map,
    Pid, Port, Reference, Tuple,
};
use proptest::prelude::*;

fn atom(s: &str) -> Term {
    Term::from(Atom::from(s))
}
fn i(v: i32) -> Term {
    int(v)
}
fn bin(s: &str) -> Term {
    Term::from(Binary::from(s.as_bytes()))
}
fn bytes(b: &[u8]) -> Term {
    Term::from(Binary::from(b))
}
fn list(v: Vec<Term>) -> Term {
    Term::from(List::from(v))
}
fn tuple(v: Vec<Term>) -> Term {
    Term::from(Tuple::from(v))
}
fn map(v: Vec<(Term, Term)>) -> Term {
    Term::from(Map::from(
        v.into_iter().collect::<std::collections::HashMap<_, _>>(),
    ))
}
fn float(v: f64) -> Term {
    Term::Float(Float { value: v })
}
fn show(t: &Term) -> String {
    to_elixir(t, &Limits::hover())
}
fn limited(t: &Term, f: impl FnOnce(&mut Limits)) -> String {
    let mut l = Limits::hover();
    f(&mut l);
    to_elixir(t, &l)
}

#[test]
fn atoms() {
    let cases = [
        ("ok", ":ok"),
        ("nil", "nil"),
        ("true", "true"),
        ("false", "false"),
        ("foo bar", ":\"foo bar\""),
        ("Elixir.Foo.Bar", "Foo.Bar"),
        ("Elixir.Foo.bar", ":\"Elixir.Foo.bar\""),
        ("Elixir.x y", ":\"Elixir.x y\""),
        ("Elixir.", ":\"Elixir.\""),
        ("Elixir.Elixir.Foo", ":\"Elixir.Elixir.Foo\""),
        ("Elixir", "Elixir"),
        ("Foo", ":Foo"),
        ("+", ":+"),
        ("::", ":\"::\""),
        ("foo?", ":foo?"),
        ("foo@bar", ":foo@bar"),
        ("9a", ":\"9a\""),
        ("a\"b\\", ":\"a\\\"b\\\\\""),
        ("#{x}", ":\"\\#{x}\""),
        ("a\u{1}", ":\"a\\x01\""),
        ("é", ":\"é\""),
        ("x\u{202E}", ":\"x\\u{202E}\""),
        ("x\u{11A87}", ":\"x\\u{11A87}\""),
        ("", ":\"\""),
    ];
    for (name, want) in cases {
        assert_eq!(atom_to_elixir(name), want, "{name:?}");
        assert_eq!(show(&atom(name)), want);
    }
    assert_eq!(module_name("Elixir.KV.Bucket"), "KV.Bucket");
    assert_eq!(module_name("lists"), ":lists");
    assert_eq!(module_name("foo-bar"), ":\"foo-bar\"");
}

#[test]
fn binaries() {
    assert_eq!(show(&bin("text")), "\"text\"");
    assert_eq!(show(&bin("")), "\"\"");
    assert_eq!(show(&bin("a\"b\\c\nd\te#{f}")), r#""a\"b\\c\nd\te\#{f}""#);
    assert_eq!(show(&bin("héllo ✓")), "\"héllo ✓\"");
    assert_eq!(show(&bytes(&[1, 2, 3])), "<<1, 2, 3>>");
    assert_eq!(show(&bytes(&[0xff, b'a'])), "<<255, 97>>");
    let bits = Term::from(BitBinary::from((vec![1, 2], 3)));
    assert_eq!(show(&bits), "<<1, 2::size(3)>>");
    let bits = Term::from(BitBinary::from((vec![5], 3)));
    assert_eq!(show(&bits), "<<5::size(3)>>");
    let whole = Term::from(BitBinary::from((b"ab".to_vec(), 8)));
    assert_eq!(show(&whole), "\"ab\"");
}

#[test]
fn charlists() {
    assert_eq!(show(&Term::from(ByteList::from("abc"))), "'abc'");
    assert_eq!(show(&list(vec![i(104), i(105)])), "'hi'");
    assert_eq!(
        show(&Term::from(ByteList::from("it's #{x}\n"))),
        r"'it\'s \#{x}\n'"
    );
    assert_eq!(show(&Term::from(ByteList::from(vec![1, 2]))), "[1, 2]");
    assert_eq!(show(&list(vec![i(955)])), "[955]");
    assert_eq!(show(&list(vec![])), "[]");
}

#[test]
fn lists_and_tuples() {
    assert_eq!(
        show(&list(vec![i(1), atom("a"), bin("b")])),
        "[1, :a, \"b\"]"
    );
    assert_eq!(
        show(&Term::from(ImproperList::from((vec![i(1)], i(2))))),
        "[1 | 2]"
    );
    let kw = list(vec![
        tuple(vec![atom("a"), i(1)]),
        tuple(vec![atom("b"), i(2)]),
    ]);
    assert_eq!(show(&kw), "[a: 1, b: 2]");
    let kw = list(vec![
        tuple(vec![atom("foo bar"), i(1)]),
        tuple(vec![atom("nil"), i(2)]),
    ]);
    assert_eq!(show(&kw), "[\"foo bar\": 1, nil: 2]");
    let aliased = list(vec![tuple(vec![atom("Elixir.Foo"), i(1)])]);
    assert_eq!(show(&aliased), "[{Foo, 1}]");
    let mixed = list(vec![tuple(vec![atom("a"), i(1)]), i(2)]);
    assert_eq!(show(&mixed), "[{:a, 1}, 2]");
    assert_eq!(show(&tuple(vec![atom("ok"), i(1)])), "{:ok, 1}");
    assert_eq!(show(&tuple(vec![])), "{}");
}

#[test]
fn maps_and_structs() {
    assert_eq!(show(&map(vec![])), "%{}");
    let m = map(vec![
        (atom("b"), i(2)),
        (atom("a"), i(1)),
        (atom("c d"), i(3)),
    ]);
    assert_eq!(show(&m), "%{a: 1, b: 2, \"c d\": 3}");
    let m = map(vec![
        (bin("k"), i(2)),
        (atom("a"), i(1)),
        (i(3), i(3)),
        (float(0.5), i(4)),
    ]);
    assert_eq!(show(&m), "%{3 => 3, 0.5 => 4, :a => 1, \"k\" => 2}");
    let m = map(vec![(atom("Elixir.Foo"), i(1)), (atom("a"), i(2))]);
    assert_eq!(show(&m), "%{Foo => 1, :a => 2}");
    let s = map(vec![
        (atom("__struct__"), atom("Elixir.KV.User")),
        (atom("name"), bin("x")),
        (atom("age"), i(3)),
    ]);
    assert_eq!(show(&s), "%KV.User{age: 3, name: \"x\"}");
    let pid = |n| Term::from(Pid::new("n@h", n, 0, 1));
    let by_pid = map(vec![(pid(10), i(1)), (pid(9), i(2))]);
    assert_eq!(show(&by_pid), "%{#PID<0.9.0> => 2, #PID<0.10.0> => 1}");
    let not_struct = map(vec![(atom("__struct__"), atom("foo"))]);
    assert_eq!(show(&not_struct), "%{__struct__: :foo}");
}

#[test]
fn numbers() {
    assert_eq!(show(&i(-42)), "-42");
    assert_eq!(
        show(&Term::from(BigInteger::from(u64::MAX))),
        "18446744073709551615"
    );
    let big = Term::decode(&[131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1][..]).unwrap();
    assert_eq!(show(&big), "-18446744073709551616");
    let floats = [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (100000.0, "100000.0"),
        (1.0e15, "1000000000000000.0"),
        (1.0e16, "1.0e16"),
        (1.0e20, "1.0e20"),
        (1.5e-5, "1.5e-5"),
        (0.0001, "0.0001"),
        (0.00012, "1.2e-4"),
        (123.456, "123.456"),
        (1.25e20, "1.25e20"),
        (5.0e-324, "5.0e-324"),
        (f64::MAX, "1.7976931348623157e308"),
    ];
    for (v, want) in floats {
        assert_eq!(show(&float(v)), want, "{v:e}");
    }
}

#[test]
fn opaque_terms() {
    assert_eq!(
        show(&Term::from(Pid::new("n@h", 123, 0, 1))),
        "#PID<0.123.0>"
    );
    assert_eq!(show(&Term::from(Port::from(("n@h", 5)))), "#Port<0.5>");
    let r = Term::from(Reference::from(("n@h", vec![3, 2, 1])));
    assert_eq!(show(&r), "#Reference<0.1.2.3>");
    let f = Term::from(ExternalFun::from(("Elixir.Enum", "map", 2)));
    assert_eq!(show(&f), "&Enum.map/2");
    let f = Term::from(ExternalFun::from(("erlang", "+", 2)));
    assert_eq!(show(&f), "&:erlang.+/2");
    let f = Term::from(InternalFun::New {
        module: Atom::from("erl_eval"),
        arity: 1,
        pid: Pid::new("n@h", 1, 0, 0),
        free_vars: vec![],
        index: 42,
        uniq: [0; 16],
        old_index: 42,
        old_uniq: 3316493,
    });
    assert_eq!(show(&f), "#Function<42.3316493/1 in :erl_eval>");
}

#[test]
fn limits() {
    let nested = list(vec![i(1), list(vec![i(2), tuple(vec![i(3)])])]);
    assert_eq!(limited(&nested, |l| l.max_depth = 1), "[1, […]]");
    assert_eq!(limited(&nested, |l| l.max_depth = 2), "[1, [2, {…}]]");
    let s = map(vec![
        (atom("__struct__"), atom("Elixir.A")),
        (atom("a"), i(1)),
    ]);
    assert_eq!(limited(&tuple(vec![s]), |l| l.max_depth = 1), "{%A{…}}");
    let long: Vec<Term> = (1..=10).map(i).collect();
    assert_eq!(
        limited(&list(long.clone()), |l| l.max_items = 3),
        "[1, 2, 3, …]"
    );
    assert_eq!(limited(&tuple(long), |l| l.max_items = 3), "{1, 2, 3, …}");
    let m = map((0..5).map(|n| (i(n), i(n))).collect());
    assert_eq!(limited(&m, |l| l.max_items = 2), "%{0 => 0, 1 => 1, …}");
    assert_eq!(limited(&bin("abcdef"), |l| l.max_binary = 3), "\"abc…\"");
    assert_eq!(limited(&bin("aé"), |l| l.max_binary = 2), "\"a…\"");
    assert_eq!(
        limited(&bytes(&[1, 2, 3]), |l| l.max_items = 2),
        "<<1, 2, …>>"
    );
    let long = Term::from(ByteList::from(vec![b'a'; 60_000]));
    assert_eq!(show(&long), format!("'{}…'", "a".repeat(200)));
    let mut odd = vec![b'a'; 60_000];
    odd[59_999] = 0;
    assert!(show(&Term::from(ByteList::from(odd))).starts_with("[97, 97,"));
    let abc = Term::from(ByteList::from("abcdef"));
    assert_eq!(limited(&abc, |l| l.max_binary = 2), "'ab…'");
    let out = limited(&list((0..1000).map(i).collect()), |l| {
        l.max_items = 10_000;
        l.max_len = 30;
    });
    assert_eq!(out.chars().count(), 30);
    assert!(out.ends_with('…'), "{out}");
}

#[test]
fn agent_markers() {
    let m = atom(TRUNC);
    assert_eq!(show(&m), "…");
    assert_eq!(show(&list(vec![i(1), i(2), m.clone()])), "[1, 2, …]");
    assert_eq!(
        show(&Term::from(ImproperList::from((vec![i(1)], m.clone())))),
        "[1, …]"
    );
    assert_eq!(
        show(&map(vec![(atom("a"), i(1)), (m.clone(), i(0))])),
        "%{a: 1, …}"
    );
    let kw = list(vec![tuple(vec![atom("a"), i(1)]), m.clone()]);
    assert_eq!(show(&kw), "[a: 1, …]");
    assert_eq!(show(&list(vec![i(104), i(105), m.clone()])), "'hi…'");
    assert_eq!(show(&tuple(vec![atom("ok"), m])), "{:ok, …}");
    let tb = |b: &[u8]| tuple(vec![atom(TRUNC_BIN), bytes(b), i(1000)]);
    assert_eq!(show(&tb(b"prefix")), "\"prefix…\"");
    assert_eq!(show(&tb(&[b'a', 0xe2, 0x80])), "\"a…\"");
    assert_eq!(show(&tb(&[1, 2])), "<<1, 2, …>>");
}

#[test]
fn pretty_layout() {
    let nums = list((1..=40).map(i).collect());
    let want = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,\n \
                23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]";
    assert_eq!(show(&nums), want);
    let m = map(vec![
        (atom("a"), tuple(vec![atom("ok"), bin(&"x".repeat(70))])),
        (atom("b"), map(vec![(atom("c"), i(1))])),
    ]);
    let want = format!(
        "%{{\n  a: {{:ok,\n      \"{}\"}},\n  b: %{{c: 1}}\n}}",
        "x".repeat(70)
    );
    assert_eq!(show(&m), want);
    let state = map(vec![
        (atom("__struct__"), atom("Elixir.MyApp.State")),
        (atom("count"), i(3)),
        (atom("items"), list((1..=30).map(i).collect())),
        (atom("name"), bin("a fairly long worker name that goes on")),
    ]);
    let want = "{:ok,\n \
                %MyApp.State{\n   \
                count: 3,\n   \
                items: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,\n           \
                20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30],\n   \
                name: \"a fairly long worker name that goes on\"\n \
                }}";
    assert_eq!(show(&tuple(vec![atom("ok"), state])), want);
    let rows = list(
        (0..4)
            .map(|n| tuple(vec![atom("row"), bin(&"y".repeat(20)), i(n)]))
            .collect(),
    );
    let out = show(&rows);
    assert!(out.starts_with("[\n  {:row, \"yyyy"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
}

#[test]
fn compact() {
    let t = map(vec![(atom("count"), i(3)), (atom("name"), bin("worker"))]);
    assert_eq!(to_elixir_compact(&t, 40), "%{count: 3, name: \"worker\"}");
    let long = list((0..100).map(i).collect());
    assert_eq!(to_elixir_compact(&long, 20), "[0, 1, 2, 3, 4, …]");
    let out = to_elixir_compact(&list(vec![bin(&"y".repeat(60))]), 20);
    assert_eq!(out.chars().count(), 20);
    assert!(!out.contains('\n') && out.ends_with('…'), "{out}");
    let out = to_elixir_compact(&long, 200);
    assert!(
        out.starts_with("[0, 1, 2") && out.ends_with(", …]"),
        "{out}"
    );
    assert_eq!(to_elixir_compact(&long, 0), "");
    assert_eq!(to_elixir_compact(&long, 1), "…");
    assert_eq!(
        to_elixir_compact(&bin(&"z".repeat(100)), 40)
            .chars()
            .count(),
        33
    );
}

fn any_term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        ".{0,6}".prop_map(|s| atom(&s)),
        Just(atom(TRUNC)),
        any::<i32>().prop_map(i),
        any::<i64>().prop_map(|v| Term::from(BigInteger::from(v))),
        any::<u64>().prop_map(|v| float(f64::from_bits(v))),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| bytes(&b)),
        (prop::collection::vec(any::<u8>(), 0..4), any::<u8>())
            .prop_map(|(b, t)| Term::from(BitBinary::from((b, t)))),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Term::from(ByteList::from(b))),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Term::from(Pid::new("n@h", a, b, 0))),
        prop::collection::vec(any::<u32>(), 0..4)
            .prop_map(|id| Term::from(Reference::from(("n@h", id)))),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(list),
            prop::collection::vec(inner.clone(), 0..8).prop_map(tuple),
            (prop::collection::vec(inner.clone(), 0..4), inner.clone())
                .prop_map(|(e, t)| Term::from(ImproperList::from((e, t)))),
            prop::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(map),
            (inner.clone(), any::<u32>()).prop_map(|(p, n)| tuple(vec![
                atom(TRUNC_BIN),
                p,
                i(n as i32)
            ])),
            (".{0,4}", inner).prop_map(|(k, v)| list(vec![tuple(vec![atom(&k), v])])),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_and_respects_max_len(
        t in any_term(),
        depth in 0usize..6, items in 0usize..6, len in 0usize..200, binary in 0usize..20,
    ) {
        let limits = Limits { max_depth: depth, max_items: items, max_len: len, max_binary: binary };
        prop_assert!(to_elixir(&t, &limits).chars().count() <= len);
        prop_assert!(to_elixir(&t, &Limits::hover()).chars().count() <= 4000);
        let c = to_elixir_compact(&t, len);
        prop_assert!(c.chars().count() <= len && !c.contains('\n'));
    }
}

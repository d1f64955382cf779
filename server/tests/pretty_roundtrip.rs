//! Every printable term, pretty-printed by `beam::pretty::to_elixir`, must
//! evaluate back to itself in Elixir. Generates a few hundred terms, then checks
//! them all with a single `elixir` process.
//!
//! The generator is seeded (reproducible); set `ORRERY_ROUNDTRIP_SEED=<u64>` to
//! explore other cases.

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;

use eetf::{
    Atom, BigInteger, Binary, BitBinary, ByteList, ExternalFun, FixInteger, Float, ImproperList,
    List, Map, Term, Tuple,
};
use orrery::beam::pretty::{to_elixir, Limits};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const CASES: usize = 300;

const CHECK_SCRIPT: &str = r#"
[path] = System.argv()
cases = path |> File.read!() |> String.split("\n", trim: true)

failures =
  cases
  |> Enum.with_index()
  |> Enum.flat_map(fn {line, i} ->
    [term_hex, printed_hex] = String.split(line, "\t")
    printed = Base.decode16!(printed_hex, case: :lower)

    try do
      expected = :erlang.binary_to_term(Base.decode16!(term_hex, case: :lower))
      {got, _} = Code.eval_string(printed)

      if got === expected do
        []
      else
        [{i, printed, "evaluates to #{inspect(got, limit: :infinity)}\n  expected    #{inspect(expected, limit: :infinity)}\n  term hex    #{term_hex}"}]
      end
    rescue
      e -> [{i, printed, "raised #{Exception.format(:error, e)}\n  term hex #{term_hex}"}]
    end
  end)

for {i, printed, why} <- failures do
  IO.puts("FAIL case #{i}:\n#{printed}\n  #{why}\n")
end

IO.puts("RAN #{length(cases)}")
"#;

fn atom(s: &str) -> Term {
    Term::from(Atom::from(s))
}

fn int(value: i32) -> Term {
    Term::from(FixInteger { value })
}

fn map(entries: Vec<(Term, Term)>) -> Term {
    Term::from(Map::from(entries.into_iter().collect::<HashMap<_, _>>()))
}

fn atom_name() -> impl Strategy<Value = String> {
    let odd = [
        "ok",
        "nil",
        "true",
        "false",
        "Elixir",
        "Elixir.",
        "Elixir.Elixir",
        "Elixir.Elixir.Foo",
        "Elixir.Foo.bar",
        "Elixir.x y",
        "Elixir.Foo..Bar",
        "Foo",
        "foo bar",
        "",
        "9lives",
        "a-b",
        "a\"b",
        "back\\slash",
        "#{x}",
        "a#b",
        "tab\there",
        "nl\n",
        "\u{1}",
        "\u{1}abc",
        "\u{7f}",
        "\u{202e}x",
        "x\u{11a87}",
        "\u{600}",
        "\u{85}",
        "é",
        "日本",
        "foo?",
        "foo!",
        "Foo?",
        "foo?bar",
        "a@b",
        "_",
        "__MODULE__",
        "do",
        "end",
        "+",
        "-",
        "++",
        "::",
        "//",
        "..//",
        "...",
        "<<>>",
        "%{}",
        "{}",
        "%",
        ".",
        "\\\\",
        "~~~",
        "^^^",
        "<|>",
        "|>",
        "=",
        "&",
        "@",
        "when",
        "-1",
        "1.0",
        ":",
        "a:",
        "'",
        "\u{fffe}",
    ];
    prop_oneof![
        proptest::sample::select(odd.to_vec()).prop_map(str::to_string),
        "[a-z_][a-zA-Z0-9_@]{0,8}[?!]?",
        "[A-Z][a-zA-Z0-9_]{0,5}(\\.[A-Z][a-z0-9_]{0,4}){0,2}".prop_map(|s| format!("Elixir.{s}")),
        ".{0,8}",
    ]
}

fn big_int() -> impl Strategy<Value = Term> {
    prop_oneof![
        any::<i64>().prop_map(|v| Term::from(BigInteger::from(v))),
        any::<u64>().prop_map(|v| Term::from(BigInteger::from(v))),
        (prop::collection::vec(any::<u8>(), 1..40), any::<bool>()).prop_map(|(digits, neg)| {
            // SMALL_BIG_EXT, for integers far beyond 64 bits.
            let mut ext = vec![131, 110, digits.len() as u8, u8::from(neg)];
            ext.extend(digits);
            Term::decode(&ext[..]).expect("valid SMALL_BIG_EXT")
        }),
    ]
}

fn float() -> impl Strategy<Value = Term> {
    let special = [
        0.0,
        -0.0,
        1.0,
        0.1,
        1.0e15,
        1.0e16,
        1.0e20,
        1.0e-5,
        1.5e-7,
        123.456,
        5.0e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    prop_oneof![
        proptest::sample::select(special.to_vec()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        (-1.0e6..1.0e6f64),
    ]
    .prop_map(|value| Term::Float(Float { value }))
}

fn binary() -> impl Strategy<Value = Term> {
    prop_oneof![
        ".{0,12}".prop_map(String::into_bytes),
        "[a-z \"\\\\#{}\n\t\r\u{7f}\u{1b}\u{7}\u{8}\u{b}\u{c}'é✓\u{11a87}\u{600}\u{202e}]{0,12}"
            .prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..12),
    ]
    .prop_map(|b| Term::from(Binary::from(b)))
}

fn charlist() -> impl Strategy<Value = Term> {
    prop_oneof![
        "[ -~\n\t]{1,10}".prop_map(|s| Term::from(ByteList::from(s))),
        "[ -~]{1,10}".prop_map(|s| Term::from(List::from(
            s.bytes().map(|b| int(b.into())).collect::<Vec<_>>()
        ))),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(|b| Term::from(ByteList::from(b))),
    ]
}

/// Terms that can be map keys without colliding after decoding (no lists,
/// which eetf may decode as either `List` or `ByteList`; no small bigints).
fn key() -> impl Strategy<Value = Term> {
    let simple = prop_oneof![
        atom_name().prop_map(|s| atom(&s)),
        any::<i32>().prop_map(int),
        binary(),
        float()
    ];
    prop_oneof![
        4 => simple.clone(),
        1 => prop::collection::vec(simple, 0..3).prop_map(|e| Term::from(Tuple::from(e))),
    ]
}

fn leaf() -> impl Strategy<Value = Term> {
    let funs = [
        ("lists", "map", 2),
        ("Elixir.Enum", "map", 2),
        ("erlang", "+", 2),
        ("Elixir.Enum", "reverse", 1),
    ];
    prop_oneof![
        3 => atom_name().prop_map(|s| atom(&s)),
        2 => any::<i32>().prop_map(int),
        1 => big_int(),
        2 => float(),
        3 => binary(),
        1 => (prop::collection::vec(any::<u8>(), 1..4), 1u8..8)
            .prop_map(|(b, bits)| Term::from(BitBinary::from((b, bits)))),
        1 => charlist(),
        1 => proptest::sample::select(funs.to_vec()).prop_map(|f| Term::from(ExternalFun::from(f))),
        1 => Just(Term::from(List::nil())),
        1 => Just(Term::from(Tuple::nil())),
        1 => Just(map(vec![])),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        let pairs = |k: BoxedStrategy<Term>| prop::collection::vec((k, inner.clone()), 1..6);
        let atom_key = atom_name().prop_map(|s| atom(&s)).boxed();
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|e| Term::from(List::from(e))),
            pairs(atom_key.clone()).prop_map(|kv| {
                let kw = kv
                    .into_iter()
                    .map(|(k, v)| Term::from(Tuple::from(vec![k, v])));
                Term::from(List::from(kw.collect::<Vec<_>>()))
            }),
            (prop::collection::vec(inner.clone(), 1..4), leaf())
                .prop_filter("improper tail", |(_, t)| !matches!(
                    t,
                    Term::List(_) | Term::ByteList(_)
                ))
                .prop_map(|(e, t)| Term::from(ImproperList::from((e, t)))),
            prop::collection::vec(inner.clone(), 0..6).prop_map(|e| Term::from(Tuple::from(e))),
            pairs(atom_key).prop_map(map),
            pairs(key().boxed()).prop_map(map),
        ]
    })
}

#[test]
fn printed_terms_evaluate_back_in_elixir() {
    match Command::new("elixir").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("elixir not installed: run make deps"),
    }

    let seed: u64 = std::env::var("ORRERY_ROUNDTRIP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0e11_1715);
    let mut seed_bytes = [0u8; 32];
    seed_bytes
        .iter_mut()
        .zip(seed.to_le_bytes().iter().cycle())
        .for_each(|(b, s)| *b = *s);
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let limits = Limits {
        max_depth: usize::MAX,
        max_items: usize::MAX,
        max_len: usize::MAX,
        max_binary: usize::MAX,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let cases_path = dir.path().join("cases.tsv");
    let script_path = dir.path().join("check.exs");
    std::fs::write(&script_path, CHECK_SCRIPT).expect("write script");
    let mut cases = std::fs::File::create(&cases_path).expect("create cases file");
    let strategy = term();
    for _ in 0..CASES {
        let generated = strategy
            .new_tree(&mut runner)
            .expect("generate term")
            .current();
        let mut ext = Vec::new();
        generated.encode(&mut ext).expect("encode term");
        // Print what Erlang will see: eetf encodes some lists of negative
        // integers as byte strings, so reading it back keeps both sides equal.
        let term = Term::decode(&ext[..]).expect("decode term");
        let printed = to_elixir(&term, &limits);
        writeln!(cases, "{}\t{}", hex::encode(ext), hex::encode(printed)).expect("write case");
    }
    drop(cases);

    let out = Command::new("elixir")
        .arg(&script_path)
        .arg(&cases_path)
        .output()
        .expect("run elixir");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "elixir failed (seed {seed}):\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("FAIL"),
        "round-trip failures (seed {seed}):\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("RAN {CASES}\n")),
        "not all cases ran (seed {seed}):\n{stdout}\n{stderr}"
    );
    // Quoting that Elixir's parser warns about means we print atoms badly.
    assert!(
        !stderr.contains("quotes are not required")
            && !stderr.contains("must be written between quotes"),
        "suspicious quoting (seed {seed}):\n{stderr}"
    );
}

/// Standard structs print exactly as the installed Elixir's `inspect` prints them.
#[test]
fn standard_structs_print_as_inspect_does() {
    let script = r#"
values = [
  ~D[2024-01-01], ~D[-0005-12-31], ~T[09:15:00], ~T[09:15:00.120], ~N[2024-01-01 12:30:00.250],
  ~U[2024-01-01 12:30:00Z], ~U[2024-01-01 12:30:00.123456Z],
  MapSet.new([2, 1, 3]), MapSet.new([:b]), MapSet.new([]), 1..10, 1..10//3, 10..1//-1, -5..-1,
  ~r/a\/b+/i, ~r/x y/,
  [~D[2024-01-01], MapSet.new(["x"]), 0..3], %{day: ~D[2024-01-01]}
]
# (Atoms as map keys or set elements: OTP 26+ iterates small maps in atom-table order,
# not term order, and inspect shows that order; Orrery prints term order.)
for v <- values do
  IO.puts(Base.encode16(:erlang.term_to_binary(v), case: :lower) <> "\t" <> Base.encode16(inspect(v), case: :lower))
end
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("structs.exs");
    std::fs::write(&path, script).expect("write script");
    let out = Command::new("elixir")
        .arg(&path)
        .output()
        .expect("run elixir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let limits = Limits::hover();
    let mut checked = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (term_hex, inspect_hex) = line.split_once('\t').expect("two columns");
        let term = Term::decode(&hex::decode(term_hex).unwrap()[..]).expect("decode");
        let want = String::from_utf8(hex::decode(inspect_hex).unwrap()).unwrap();
        assert_eq!(to_elixir(&term, &limits), want);
        checked += 1;
    }
    assert_eq!(checked, 18);
}

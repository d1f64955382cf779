use super::*;
use proptest::prelude::*;

fn decode_all(input: &[u8], splits: &[usize]) -> Vec<Result<Value, BadFrame>> {
    let mut codec = FrameCodec::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut out = vec![];
    let mut at = 0;
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort();
    for cut in cuts {
        buf.extend_from_slice(&input[at..cut.max(at)]);
        at = cut.max(at);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item.map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null)));
        }
    }
    out
}

fn valid(i: usize) -> Vec<u8> {
    frame(format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"m\"}}").as_bytes())
}

#[test]
fn each_bad_frame_is_reported_once_and_the_next_one_is_read() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("too short", b"Content-Length: 5\r\n\r\n{\"id\":1}".to_vec()),
        (
            "too long",
            b"Content-Length: 500\r\n\r\n{\"id\":1}".to_vec(),
        ),
        ("huge", b"Content-Length: 1000000000000\r\n\r\n{}".to_vec()),
        ("not utf-8", b"Content-Length: 2\xff\xfe\r\n\r\n{}".to_vec()),
        ("no length", b"X-Junk: 1\r\n\r\n{}".to_vec()),
        ("garbage", b"hello there, \x00\x01 garbage".to_vec()),
        ("bad length", b"Content-Length: -3\r\n\r\n{}".to_vec()),
        ("not json", b"Content-Length: 5\r\n\r\n{bad}".to_vec()),
    ];
    for (name, bad) in cases {
        let mut input = bad.clone();
        input.extend(valid(7));
        let out = decode_all(&input, &[]);
        let oks: Vec<_> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            oks.last().map(|v| v["id"].clone()),
            Some(7.into()),
            "{name}: {out:?}"
        );
        assert_eq!(
            out.iter().filter(|r| r.is_err()).count(),
            1,
            "{name}: {out:?}"
        );
    }
}

#[test]
fn a_long_body_is_not_taken_for_a_header() {
    let body = format!(
        "{{\"text\":\"Content-Length: 12\\r\\n{}\"}}",
        "x".repeat(50_000)
    );
    let out = decode_all(&frame(body.as_bytes()), &[3, 100, 20_000]);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_ok());
}

#[test]
fn shared_header_parsing() {
    assert_eq!(parse_header(b"Content-Length: 12"), Ok(12));
    assert_eq!(parse_header(b"content-type: x\r\ncontent-length:3"), Ok(3));
    assert!(parse_header(b"Content-Length: 1x").is_err());
    assert!(parse_header(b"garbage").is_err());
    assert!(parse_body(b"3").is_err());
}

#[derive(Debug, Clone)]
enum Junk {
    Bytes(Vec<u8>),
    Short,
    Long(usize),
    Huge,
    NonUtf8,
    NoHeader,
    NotJson,
}

fn junk() -> impl Strategy<Value = Junk> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Junk::Bytes),
        Just(Junk::Short),
        (1usize..5000).prop_map(Junk::Long),
        Just(Junk::Huge),
        Just(Junk::NonUtf8),
        Just(Junk::NoHeader),
        Just(Junk::NotJson),
    ]
}

fn junk_bytes(j: &Junk) -> Vec<u8> {
    match j {
        Junk::Bytes(b) => b.clone(),
        Junk::Short => b"Content-Length: 4\r\n\r\n{\"a\":[1,2,3]}".to_vec(),
        Junk::Long(n) => format!("Content-Length: {}\r\n\r\n{{\"a\":", n + 6).into_bytes(),
        Junk::Huge => b"Content-Length: 99999999999999999\r\n\r\n{}".to_vec(),
        Junk::NonUtf8 => b"Cont\xc3\x28nt-Length: 2\r\n\r\n{}".to_vec(),
        Junk::NoHeader => b"{\"jsonrpc\":\"2.0\"}".to_vec(),
        Junk::NotJson => b"Content-Length: 3\r\n\r\nabc".to_vec(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever comes before it and however the bytes are split, each valid message
    /// after a bad one is read.
    #[test]
    fn every_valid_message_is_read(
        junks in proptest::collection::vec(junk(), 1..8),
        splits in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut input = vec![];
        for (i, j) in junks.iter().enumerate() {
            input.extend(junk_bytes(j));
            input.extend(valid(1000 + i));
        }
        let out = decode_all(&input, &splits);
        let ids: Vec<i64> = out
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter_map(|v| v["id"].as_i64())
            .filter(|i| *i >= 1000)
            .collect();
        let want: Vec<i64> = (0..junks.len() as i64).map(|i| 1000 + i).collect();
        prop_assert_eq!(ids, want);
    }
}

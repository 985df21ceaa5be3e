//! Property tests of `qapi_codegen::json` against serde_json, the parser it replaces
//! in the generator: on any text, both accept or both reject, and what both accept
//! ours writes back as JSON that serde_json reads as the same value.

use proptest::prelude::*;
use qapi_codegen::json;

/// Pieces of JSON and of near-JSON, glued together at random.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\n",
    "\"",
    "\"a\"",
    "\"b\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud800\"",
    "\"\\n\\t\\\\\\/\"",
    "\\",
    "0",
    "1",
    "-",
    "-0",
    "12",
    ".",
    ".5",
    "e",
    "E+3",
    "e-2",
    "1e400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "true",
    "false",
    "null",
    "tru",
    "nul",
    "é",
    "\u{1}",
    "\t",
    "x",
];

fn agree(text: &str) -> Result<(), TestCaseError> {
    let ours = json::parse(text);
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            // What we write, serde_json reads as the value it read from `text`.
            let back = serde_json::from_str::<serde_json::Value>(&a.to_string());
            prop_assert!(
                back.as_ref().is_ok_and(|back| same(back, b)),
                "{text:?} written as {a}, read back as {back:?}, not {b}"
            );
        }
        (Err(_), Err(_)) => {}
        _ => prop_assert!(
            false,
            "{text:?}: ours {:?}, serde_json {:?}",
            ours.map(|v| v.to_string()),
            theirs.map(|v| v.to_string())
        ),
    }
    Ok(())
}

/// Equal values, except that floats may differ by 2 units in the last place.
///
/// This tolerance is serde_json's, not ours: without its `float_roundtrip` feature
/// (which the workspace does not turn on, and which would change how the `qmp` crate
/// reads numbers in every test build) serde_json parses long numbers to a nearby float
/// rather than the nearest (`118446744073709551615`: ours 1.1844674407370955e20, the
/// nearest; serde_json 1.1844674407370957e20, one unit above). Our floats are compared
/// exactly, bit for bit, with Rust's correctly rounded `str::parse::<f64>` by
/// [`exactly_as_str_parse`] (`numbers_read_as_str_parse_reads_them`).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x.signum() == y.signum() && x.to_bits().abs_diff(y.to_bits()) <= 2)
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Checks that ours reads the number `text`, alone and inside an array and an object,
/// as an exact integer when it is one in range of `u64`/`i64`, and otherwise as the
/// float `str::parse::<f64>` reads (bit for bit: `-0.0` is not `0.0`), refusing it
/// when that float is infinite.
fn exactly_as_str_parse(text: &str) -> Result<(), TestCaseError> {
    let integer = !text.contains(['.', 'e', 'E']);
    let exact_int = if integer && text.starts_with('-') {
        text.parse::<i64>()
            .ok()
            .filter(|&n| n < 0)
            .map(|n| n.to_string())
    } else if integer {
        text.parse::<u64>().ok().map(|n| n.to_string())
    } else {
        None
    };
    let expected = text.parse::<f64>();
    prop_assert!(expected.is_ok(), "{text:?} is not a Rust float either");
    let expected = expected.unwrap_or_default();
    for doc in [
        text.to_owned(),
        format!("[1, {text}]"),
        format!("{{\"a\": {text}}}"),
    ] {
        let ours = json::parse(&doc);
        let n = match &ours {
            Ok(json::Value::Number(n)) => *n,
            Ok(json::Value::Array(items)) if items.len() == 2 => match items[1] {
                json::Value::Number(n) => n,
                _ => return Err(TestCaseError::fail(format!("{doc:?}: {ours:?}"))),
            },
            Ok(json::Value::Object(m)) => match m.get("a") {
                Some(json::Value::Number(n)) => *n,
                _ => return Err(TestCaseError::fail(format!("{doc:?}: {ours:?}"))),
            },
            Ok(other) => return Err(TestCaseError::fail(format!("{doc:?}: {other:?}"))),
            Err(e) => {
                prop_assert!(
                    !expected.is_finite(),
                    "{doc:?} refused ({e}) though it reads as {expected:?}"
                );
                continue;
            }
        };
        prop_assert!(expected.is_finite() || exact_int.is_some(), "{doc:?}: {n}");
        match &exact_int {
            Some(i) => prop_assert_eq!(&n.to_string(), i, "{:?}", doc),
            None => {
                prop_assert!(
                    n.as_i64().is_none() && n.as_u64().is_none(),
                    "{doc:?}: {n} is no float"
                );
                prop_assert_eq!(
                    n.as_f64().to_bits(),
                    expected.to_bits(),
                    "{:?}: ours {:?}, str::parse {:?}",
                    doc,
                    n.as_f64(),
                    expected
                );
            }
        }
    }
    Ok(())
}

/// JSON number texts: any sign, integer part (no leading zero), fraction and
/// exponent, with up to 40 digits (beyond what `f64` holds, so rounding matters).
fn number_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop_oneof![Just("0".to_owned()), "[1-9][0-9]{0,39}"],
        prop::option::of("[0-9]{1,40}"),
        prop::option::of(("[eE]", "[+-]?", "[0-9]{1,4}")),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let mut t = String::new();
            if neg {
                t.push('-');
            }
            t.push_str(&int);
            if let Some(f) = frac {
                t.push('.');
                t.push_str(&f);
            }
            if let Some((e, sign, digits)) = exp {
                t.push_str(&format!("{e}{sign}{digits}"));
            }
            t
        })
}

#[test]
fn tricky_numbers_read_as_str_parse_reads_them() {
    for text in [
        "118446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "-0",
        "-0.0",
        "0e0",
        "1e400",
        "-1e400",
        "1e-400",
        "2.2250738585072011e-308",
        "2.2250738585072014e-308",
        "4.9406564584124654e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "9007199254740993",
        "9007199254740993.0",
        "0.1",
        "0.30000000000000004",
        "123456789012345678901234567890e-10",
    ] {
        exactly_as_str_parse(text).unwrap();
    }
}

#[test]
fn long_numbers_are_correctly_rounded() {
    // 118446744073709551615 is between the floats 118446744073709551616 (the
    // nearest, 1 away) and 118446744073709535232.
    let v = json::parse("118446744073709551615").unwrap();
    assert_eq!(v.to_string(), "1.1844674407370955e20");
    assert_eq!(
        json::parse(&v.to_string()).unwrap(),
        json::parse("118446744073709551616").unwrap()
    );
    // The input proptest found: serde_json reads it one unit above.
    agree("118446744073709551615").unwrap();
}

/// Arbitrary JSON values, written by serde_json (pretty or compact).
fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn glued_pieces(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..12)) {
        agree(&pieces.concat())?;
    }

    #[test]
    fn numbers_read_as_str_parse_reads_them(text in number_text()) {
        exactly_as_str_parse(&text)?;
    }

    #[test]
    fn floats_read_back_exactly(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        // Rust writes the shortest text that reads back as the same float.
        exactly_as_str_parse(&format!("{f:?}"))?;
        exactly_as_str_parse(&format!("{f:e}"))?;
    }

    #[test]
    fn any_text(text in any::<String>()) {
        agree(&text)?;
    }

    #[test]
    fn any_value(v in value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        };
        agree(&text)?;
    }
}

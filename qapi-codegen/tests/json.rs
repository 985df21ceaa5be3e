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

/// Equal values, except that floats may differ by 2 units in the last place:
/// serde_json (without its `float_roundtrip` feature) parses long numbers to a nearby
/// float rather than the nearest, which ours gives (`118446744073709551615`: ours
/// 1.1844674407370955e20, the nearest; serde_json 1.1844674407370957e20, one unit above;
/// see `long_numbers_are_correctly_rounded`).
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

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
            let back = serde_json::from_str::<serde_json::Value>(&a.to_string()).ok();
            prop_assert_eq!(back.as_ref(), Some(b), "{:?} written as {}", text, a);
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

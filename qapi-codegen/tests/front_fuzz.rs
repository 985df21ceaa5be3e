//! Property tests of the source front end: whatever the bytes, parsing (and dumping
//! what parses) returns, without panicking or hanging. Inputs are arbitrary bytes,
//! byte-level mutations of small schemas written for this test, and token-level
//! mutations that keep the input close to the QAPI dialect.

use std::collections::HashMap;
use std::io;

use proptest::prelude::*;
use qapi_codegen::front::{parse_with_loader, SchemaError};

/// Small schemas exercising most of the dialect.
const SEEDS: &[&str] = &[
    "{ 'enum': 'Color', 'data': [ 'red', { 'name': 'blue', 'if': 'CONFIG_BLUE' } ] }\n",
    "{ 'struct': 'Base', 'data': { 'kind': 'Kind', '*opt': 'int' } }\n\
     { 'enum': 'Kind', 'data': [ 'a', 'b' ] }\n\
     { 'union': 'Uni', 'base': 'Base', 'discriminator': 'kind',\n\
       'data': { 'a': 'Extra', 'b': { 'type': 'Extra', 'if': { 'not': 'X' } } } }\n\
     { 'struct': 'Extra', 'data': { 'e': 'int' } }\n",
    "{ 'alternate': 'Alt', 'data': { 'n': 'int', 'b': 'bool', 'l': ['int'], 'o': 'Obj' } }\n\
     { 'struct': 'Obj', 'data': {} }\n",
    "##\n# @cmd:\n#\n# Does it.\n#\n# @arg: the arg\n#\n# Features:\n#\n# @unstable: new\n#\n\
     # Returns: nothing much\n#\n# Since: 1.0\n##\n\
     { 'command': 'cmd', 'data': { 'arg': 'str' }, 'returns': 'Ret',\n\
       'features': [ 'unstable' ], 'allow-preconfig': true }\n\
     { 'struct': 'Ret', 'data': {} }\n",
    "{ 'pragma': { 'doc-required': false, 'command-returns-exceptions': [ 'x' ] } }\n\
     { 'include': 'sub.json' }\n\
     { 'event': 'EV', 'data': { 'a': [ 'str' ] }, 'if': { 'all': [ 'A', 'B' ] } }\n",
    "##\n# = Heading\n#\n# Free text with *emphasis*.\n##\n\
     { 'pragma': { 'member-name-exceptions': [] } }\n\
     { 'struct': 'Sa', 'data': { 'a': { 'type': 'int', 'features': [ 'deprecated' ] } },\n\
       'base': 'Sb' }\n{ 'struct': 'Sb', 'data': { 'b': 'bool' } }\n",
    "# @qapi-codegen {\"module\": \"m.json\", \"manual\": \"m\"}\n\
     # @qapi-codegen {\"since\": \"1.0\"}\n\
     { 'command': 'c', 'data': { 'a': [ 'int' ] } }\n\
     # @qapi-codegen {\"module\": \"n.json\"}\n{ 'struct': 'Sm', 'data': {} }\n",
];

const SUB: &str = "{ 'struct': 'Sub', 'data': { 'x': 'number' } }\n";

/// Parse `root` as `qapi-schema.json`, with `sub.json` available for includes; dump
/// the result when it parses.
fn run(root: &[u8]) -> Result<String, SchemaError> {
    let files: HashMap<&str, &[u8]> = [("qapi-schema.json", root), ("sub.json", SUB.as_bytes())]
        .into_iter()
        .collect();
    let schema = parse_with_loader("qapi-schema.json", "/t", |f| {
        files
            .get(f)
            .map(|b| b.to_vec())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    })?;
    Ok(qapi_codegen::dump::dump(&schema))
}

/// Bytes that matter to the dialect, for mutations.
const ALPHABET: &[u8] = b"{}[]:,'#@ \n\t\\*-_abcqABCZ019trufalse\x00\xc3\xa9\xff";

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop::sample::select(ALPHABET);
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut v = seed.as_bytes().to_vec();
    for e in edits {
        let n = v.len().max(1);
        match *e {
            Edit::Insert(i, b) => v.insert(i % (v.len() + 1), b),
            Edit::Delete(i) if !v.is_empty() => {
                v.remove(i % n);
            }
            Edit::Replace(i, b) if !v.is_empty() => v[i % n] = b,
            Edit::Duplicate(i, len) if !v.is_empty() => {
                let start = i % n;
                let end = (start + len).min(v.len());
                let chunk = v[start..end].to_vec();
                v.splice(start..start, chunk);
            }
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = run(&bytes);
    }

    #[test]
    fn mutated_schemas_never_panic(
        seed in prop::sample::select(SEEDS),
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        let _ = run(&apply(seed, &edits));
    }

    #[test]
    fn dialect_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(&[
        "{", "}", "[", "]", ":", ",", "'enum'", "'struct'", "'union'", "'alternate'",
        "'command'", "'event'", "'data'", "'base'", "'discriminator'", "'if'", "'all'",
        "'not'", "'features'", "'returns'", "'boxed'", "true", "false", "'Foo'", "'foo'",
        "'*x'", "'int'", "'str'", "['Foo']", "'include'", "'sub.json'", "'pragma'",
        "\n##\n# @Foo:\n##\n", "\n# c\n", "'type'", "'name'", "'CONFIG_X'", "'q_x'",
    ][..]), 0..80)) {
        let _ = run(tokens.join(" ").as_bytes());
    }
}

#[test]
fn seeds_parse() {
    // The seeds themselves are valid schemas (they only help if they get far).
    for (i, seed) in SEEDS.iter().enumerate() {
        if let Err(e) = run(seed.as_bytes()) {
            panic!("seed {i} does not parse: {e}");
        }
    }
}

#[test]
fn deep_nesting_is_an_error() {
    for open in ["[", "{ 'a': "] {
        let src = format!("{{ 'struct': 'S', 'data': {} }}\n", open.repeat(100_000));
        let e = run(src.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("nesting too deep"), "{e}");
    }
    let mut cond = String::from("'A'");
    for _ in 0..2000 {
        cond = format!("{{ 'not': {cond} }}");
    }
    let src = format!("{{ 'enum': 'E', 'data': [], 'if': {cond} }}\n");
    assert!(run(src.as_bytes()).is_err());
}

#[test]
fn bad_files_are_errors() {
    let e = run(b"{ 'enum': 'E', 'data': [ 'a' ] } # \xff\xfe\n").unwrap_err();
    assert!(e.to_string().contains("invalid UTF-8"), "{e}");
    let e = run(b"{ 'include': 'sub.json' }\n{ 'include': 'missing.json' }\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "qapi-schema.json:2: can't read include file 'missing.json': entity not found"
    );
    let e = run(b"{ 'include': './qapi-schema.json' }\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "qapi-schema.json:1: inclusion loop for ./qapi-schema.json"
    );
}

#[test]
fn long_base_chains_are_checked_without_overflow() {
    let mut src = String::new();
    for i in 0..3000 {
        src.push_str(&format!(
            "{{ 'struct': 'Sn{i}', 'base': 'Sn{}', 'data': {{ 'm{i}': 'int' }} }}\n",
            i + 1
        ));
    }
    src.push_str("{ 'struct': 'Sn3000', 'data': {} }\n");
    let e = run(src.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("nest too deeply"), "{e}");
}

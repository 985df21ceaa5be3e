//! The plain layout (`generate_plain`, what `generate` makes without the `format`
//! feature, as in the bindings crate's build script) holds exactly the emitter's
//! tokens, for the schemas the default bindings are built from.

use std::path::Path;

use proc_macro2::{Group, Literal, TokenStream, TokenTree};
use qapi_codegen::emit::{generate, generate_plain, generate_tokens, Options};
use quote::ToTokens;

/// The tokens of a source file, string literals written one way (a `///` comment
/// is a raw string to `syn`, the emitter's doc attributes are escaped strings).
fn tokens_of(source: &str) -> String {
    let file = syn::parse_file(source).unwrap_or_else(|e| panic!("does not parse: {e}"));
    normalize(file.into_token_stream()).to_string()
}

fn normalize(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                TokenTree::Group(Group::new(g.delimiter(), normalize(g.stream())))
            }
            TokenTree::Literal(l) => match syn::parse_str::<syn::LitStr>(&l.to_string()) {
                Ok(s) => TokenTree::Literal(Literal::string(&s.value())),
                Err(_) => TokenTree::Literal(l),
            },
            other => other,
        })
        .collect()
}

#[test]
fn plain_layout_has_the_tokens_of_the_formatted_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    for schema in ["schema/qemu-system-10.0.json", "schema/qemu-ga-10.0.json"] {
        let loaded = qapi_codegen::config::load_with(&root.join(schema), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let opts = Options::default();
        let plain = generate_plain(&loaded.schema, &opts).expect("generate_plain");
        let formatted = generate(&loaded.schema, &opts).expect("generate");
        assert!(plain.starts_with("// @generated"), "{schema}: header");
        assert!(
            plain.lines().count() > formatted.lines().count() / 2,
            "{schema}: the plain layout breaks lines ({} vs {} lines)",
            plain.lines().count(),
            formatted.lines().count()
        );
        let emitted = generate_tokens(&loaded.schema, &opts).expect("generate_tokens");
        let emitted: syn::File = syn::parse2(emitted).expect("the emitter's tokens parse");
        assert!(
            tokens_of(&plain) == normalize(emitted.into_token_stream()).to_string(),
            "{schema}: the plain layout changed the tokens"
        );
    }
}

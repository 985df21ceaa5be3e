//! Events: one struct per event implementing `qmp::Event`, the `Event` enum over all
//! of them implementing `qmp::EventSet`, and the `EVENTS` table, into `pub mod events`.
//!
//! `Event` decodes with one `match` on the name and deserializes `data` straight from
//! its raw text into the variant's struct (no intermediate `serde_json::Value`), so
//! typed decoding costs about what parsing the line does.

use proc_macro2::TokenStream;
use quote::quote;

use super::names::{self, Namer};
use super::types::{fields, record_impl};
use super::{id, ifcond_tokens, match_name, Ctx, EmitError, Module};
use crate::model::EntityKind;

pub(crate) fn emit(ctx: &Ctx) -> Result<TokenStream, EmitError> {
    let mut namer = Namer::with_reserved(&["Event", "EVENTS"]);
    let mut vnamer = Namer::default();
    let mut items = TokenStream::new();
    let mut variants = Vec::new();
    let mut decode = Vec::new();
    let mut names_arms = Vec::new();
    let mut table = Vec::new();
    let mut visits = Vec::new();
    for (e, ev) in ctx.schema.events() {
        let camel = names::camel_ident(&e.name);
        let rust = namer.unique(camel.clone());
        let name = id(&rust);
        let vrust = vnamer.unique(camel);
        let var = id(&vrust);
        let wire = &e.name;
        let mut docs = ctx.entity_docs(e, "event");
        docs.extend(super::doc_alias(&rust, wire));
        let valias = super::doc_alias(&vrust, wire);
        let dep = ctx.deprecated_attr(Some(e), &e.features);
        let obj = match ev.arg_type.map(|a| &ctx.schema.entity(a).kind) {
            Some(EntityKind::Object(o)) if !ev.boxed && o.branches.is_none() => Some(o),
            _ => None,
        };
        let vdoc = format!(" The `{wire}` event.");
        match (ev.arg_type, obj) {
            (None, _) => {
                items.extend(quote! {
                    #docs
                    #dep
                    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
                    pub struct #name;
                    ::qmp::__qapi_unit_serde!(#name);
                });
                variants.push(quote!(#[doc = #vdoc] #valias #dep #var,));
                decode.push(quote!(#wire => Self::#var,));
                names_arms.push(quote!(Self::#var => #wire,));
            }
            (Some(_), Some(o)) => {
                let f = fields(
                    ctx,
                    e,
                    None,
                    ev.arg_type,
                    &o.members,
                    None,
                    Module::Other,
                    &mut Namer::default(),
                )?;
                let defs = f.members.iter().map(|x| &x.def);
                let record = record_impl(&name, wire, &f.members, None);
                // For building one in a test (fields can be assigned, not listed:
                // the struct is `#[non_exhaustive]`).
                let default = if f.all_default() {
                    quote!(Default,)
                } else {
                    quote!()
                };
                items.extend(quote! {
                    #docs
                    #dep
                    #[derive(Clone, #default PartialEq)]
                    #[non_exhaustive]
                    pub struct #name {
                        #(#defs)*
                    }
                    #record
                });
                variants.push(quote!(#[doc = #vdoc] #valias #dep #var(#name),));
                decode.push(quote!(#wire => Self::#var(::qmp::runtime::decode_data(data)?),));
                names_arms.push(quote!(Self::#var(_) => #wire,));
            }
            (Some(arg), None) => {
                let inner = ctx.rust_type(arg, Module::Other)?;
                items.extend(quote! {
                    #docs
                    #dep
                    #[derive(Clone, Debug, PartialEq)]
                    pub struct #name(pub #inner);
                    ::qmp::__qapi_newtype_serde!(#name);
                });
                variants.push(quote!(#[doc = #vdoc] #valias #dep #var(#name),));
                decode.push(quote!(#wire => Self::#var(::qmp::runtime::decode_data(data)?),));
                names_arms.push(quote!(Self::#var(_) => #wire,));
            }
        }
        visits.push(quote!(#wire => ::std::option::Option::Some(v.visit::<#name>()),));
        items.extend(quote! {
            impl ::qmp::Event for #name {
                const NAME: &'static str = #wire;
            }
        });
        let ifc = ifcond_tokens(e.ifcond.as_ref());
        let deprecated = e.is_deprecated();
        let unstable = e.is_unstable();
        table.push(quote! {
            ::qmp::runtime::EventInfo {
                name: #wire,
                ifcond: #ifc,
                deprecated: #deprecated,
                unstable: #unstable,
            },
        });
    }
    let unknown = id(&vnamer.unique("Unknown".to_owned()));
    let decode_body = match_name(
        &decode,
        quote!(Self::#unknown {
            name: ::std::borrow::ToOwned::to_owned(name),
            data: ::qmp::runtime::raw_data(data)?,
        }),
    );
    let visit_body = match_name(&visits, quote!(::std::option::Option::None));
    items.extend(quote! {
        /// Every event of the schema, so that a `match` on an event is checked by the
        /// compiler. Events these bindings do not know (from a newer QEMU) decode into
        /// the catch-all variant, never into an error.
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            #(#variants)*
            /// An event these bindings do not know, as sent.
            #unknown {
                /// The event's name.
                name: ::std::string::String,
                /// Its `data` member, if it had one.
                data: ::std::option::Option<::serde_json::Value>,
            },
        }
        impl Event {
            /// The event's wire name.
            #[inline]
            pub fn name(&self) -> &str {
                match self {
                    #(#names_arms)*
                    Self::#unknown { name, .. } => name,
                }
            }
        }
        impl ::qmp::EventSet for Event {
            // `#[inline]`: the decoding code of every event is generated only in the
            // crates that decode events, not when the bindings are built.
            #[inline]
            fn decode(
                name: &str,
                data: ::std::option::Option<&str>,
            ) -> ::std::result::Result<Self, ::serde_json::Error> {
                ::std::result::Result::Ok(#decode_body)
            }
        }
        /// Runs `v` with the type of event `name` (`None` for an event the schema does not
        /// have).
        #[inline]
        pub fn visit_event<V: ::qmp::runtime::EventVisitor>(
            name: &str,
            v: V,
        ) -> ::std::option::Option<V::Output> {
            let _ = &v;
            #visit_body
        }
        /// Every event of the schema, in definition order, with what is known about it
        /// at run time (conditions, features).
        pub const EVENTS: &[::qmp::runtime::EventInfo] = &[#(#table)*];
    });
    Ok(items)
}

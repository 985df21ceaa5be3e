//! Commands: one struct per command (its arguments) implementing `qmp::Command`, the
//! `COMMANDS` table, `check_command_arguments` and `check_command_reply`, into
//! `pub mod commands`.

use proc_macro2::TokenStream;
use quote::quote;

use super::names::{self, Namer};
use super::types::{fields, struct_with_ctor, RestField};
use super::{id, ifcond_tokens, match_name, Ctx, EmitError, Module};
use crate::model::{EntityKind, Object};

pub(crate) fn emit(ctx: &Ctx) -> Result<TokenStream, EmitError> {
    let mut namer = Namer::with_reserved(&["COMMANDS"]);
    let mut items = TokenStream::new();
    let mut table = Vec::new();
    let mut checks = Vec::new();
    let mut visits = Vec::new();
    let mut replies = Vec::new();
    for (e, c) in ctx.schema.commands() {
        let rust = namer.unique(names::camel_ident(&e.name));
        let name = id(&rust);
        let wire = &e.name;
        let mut docs = ctx.entity_docs(e, "command");
        docs.extend(super::doc_alias(&rust, wire));
        let dep = ctx.deprecated_attr(Some(e), &e.features);
        let reply = match c.ret_type {
            Some(t) => ctx.rust_type(t, Module::Other)?,
            None => quote!(::qmp::runtime::Empty),
        };
        let args_obj: Option<&Object> = match c.arg_type.map(|a| &ctx.schema.entity(a).kind) {
            Some(EntityKind::Object(o)) if !c.boxed => Some(o),
            _ => None,
        };
        let unit = c.arg_type.is_none()
            || args_obj.is_some_and(|o| o.members.is_empty() && o.branches.is_none() && c.gen);
        if unit {
            items.extend(quote! {
                #docs
                #dep
                #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
                pub struct #name;
                ::qmp::__qapi_unit_serde!(#name);
            });
            checks.push(quote!(#wire => ::std::option::Option::Some(::qmp::runtime::check_no_arguments(args)),));
        } else if let (Some(o), false) = (args_obj, c.boxed) {
            let mut fnamer = Namer::default();
            let f = fields(
                ctx,
                e,
                None,
                c.arg_type,
                &o.members,
                None,
                Module::Other,
                &mut fnamer,
            )?;
            // `gen: false` commands take more than their schema says (`device_add`
            // takes the device's properties): keep whatever else is given.
            let rest = if c.gen {
                None
            } else {
                let extra = id(&fnamer.unique("extra".to_owned()));
                let set = super::setter(&extra.to_string());
                let setter = quote! {
                    /// Adds an argument the schema does not declare (this command takes
                    /// more than its schema says, e.g. a device's properties).
                    #[inline]
                    pub fn #set(mut self, name: &str, value: ::serde_json::Value) -> Self {
                        self.#extra.insert(::std::borrow::ToOwned::to_owned(name), value);
                        self
                    }
                };
                let i = proc_macro2::Literal::usize_unsuffixed(f.members.len());
                Some(RestField {
                    def: quote! {
                        /// Arguments the schema does not declare.
                        pub #extra: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
                    },
                    param: None,
                    init: quote!(#extra: ::serde_json::Map::new()),
                    setter: Some(setter),
                    field: extra.clone(),
                    slot: quote!(::serde_json::Map<::std::string::String, ::serde_json::Value>),
                    take: quote!(::qmp::runtime::slot_extra(&mut slots.#i, key, map)),
                    finish: quote!(slots.#i),
                    put: quote!(::qmp::runtime::put_extra(m, &self.#extra)?;),
                })
            };
            // Only when every argument is optional: `Default` would otherwise build a
            // command without its required arguments.
            let default = f.all_optional() && rest.is_none();
            items.extend(struct_with_ctor(
                &docs,
                &dep,
                &name,
                wire,
                &f,
                rest.as_ref(),
                default,
            ));
            checks.push(quote!(#wire => ::std::option::Option::Some(::qmp::runtime::check_arguments::<#name>(args)),));
        } else {
            // boxed: the arguments are one (possibly union) type.
            let Some(arg) = c.arg_type else {
                return Err(EmitError::Model(format!(
                    "command `{wire}` lost its arguments"
                )));
            };
            let inner = ctx.rust_type(arg, Module::Other)?;
            items.extend(quote! {
                #docs
                #dep
                #[derive(Clone, Debug, PartialEq)]
                pub struct #name(pub #inner);
                ::qmp::__qapi_newtype_serde!(#name);
                impl #name {
                    /// Creates the command from its arguments.
                    #[inline]
                    pub fn new(arguments: impl ::std::convert::Into<#inner>) -> Self {
                        Self(arguments.into())
                    }
                }
            });
            checks.push(quote!(#wire => ::std::option::Option::Some(::qmp::runtime::check_arguments::<#name>(args)),));
        }
        visits.push(quote!(#wire => ::std::option::Option::Some(v.visit::<#name>()),));
        replies.push(quote!(#wire => ::std::option::Option::Some(::qmp::runtime::check_reply::<#name>(reply)),));
        let oob = c.allow_oob;
        let success = c.success_response;
        let consts = {
            let mut t = TokenStream::new();
            if oob {
                t.extend(quote!(
                    const ALLOW_OOB: bool = true;
                ));
            }
            if !success {
                t.extend(quote!(
                    const SUCCESS_RESPONSE: bool = false;
                ));
            }
            t
        };
        items.extend(quote! {
            impl ::qmp::Command for #name {
                const NAME: &'static str = #wire;
                type Reply = #reply;
                #consts
            }
        });
        let ifc = ifcond_tokens(e.ifcond.as_ref());
        let deprecated = e.is_deprecated();
        let unstable = e.is_unstable();
        table.push(quote! {
            ::qmp::runtime::CommandInfo {
                name: #wire,
                ifcond: #ifc,
                deprecated: #deprecated,
                unstable: #unstable,
                allow_oob: #oob,
                success_response: #success,
            },
        });
    }
    items.extend(quote! {
        /// Every command of the schema, in definition order, with what is known about it
        /// at run time (conditions, features, `allow-oob`, `success-response`).
        pub const COMMANDS: &[::qmp::runtime::CommandInfo] = &[#(#table)*];
    });
    let visit_body = match_name(&visits, quote!(::std::option::Option::None));
    let check_body = match_name(&checks, quote!(::std::option::Option::None));
    let reply_body = match_name(&replies, quote!(::std::option::Option::None));
    items.extend(quote! {
        /// Runs `v` with the type of command `name` (`None` for a command the schema does
        /// not have): the way from a command name known only at run time to its types.
        #[inline]
        pub fn visit_command<V: ::qmp::runtime::CommandVisitor>(
            name: &str,
            v: V,
        ) -> ::std::option::Option<V::Output> {
            // (`v` is unused when the schema has no commands)
            let _ = &v;
            #visit_body
        }
    });
    if ctx.opts.check_arguments {
        items.extend(quote! {
            /// Checks the JSON `arguments` of command `name` against its typed arguments.
            ///
            /// Returns `None` for a command the schema does not have, `Some(Err(..))`
            /// naming the offending member when the arguments do not fit.
            ///
            /// (`#[inline]` so that its code, which decodes every command's arguments, is
            /// only generated in crates that call it.)
            #[inline]
            pub fn check_command_arguments(
                name: &str,
                args: &::serde_json::Value,
            ) -> ::std::option::Option<::std::result::Result<(), ::std::string::String>> {
                let _ = args;
                #check_body
            }

            /// Checks `reply`, the JSON text of the `return` member of a reply to command
            /// `name`, by decoding it into the command's typed reply exactly as
            /// `execute` would (see `qmp::runtime::check_reply`).
            ///
            /// Returns `None` for a command the schema does not have, `Some(Err(..))`
            /// with the decode error (command, member path, serde's message, the reply)
            /// when the reply does not fit.
            ///
            /// (`#[inline]` for the reason `check_command_arguments` is: it decodes
            /// every command's reply.)
            #[inline]
            pub fn check_command_reply(
                name: &str,
                reply: &str,
            ) -> ::std::option::Option<::std::result::Result<(), ::qmp::Error>> {
                let _ = reply;
                #reply_body
            }
        });
    }
    Ok(items)
}

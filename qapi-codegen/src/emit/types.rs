//! Types: enums, structs, unions and alternates, into `pub mod types`.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::names::{self, Namer};
use super::{docs_attrs, id, setter, Ctx, EmitError, Module};
use crate::model::{Alternate, Entity, EntityId, EntityKind, Enum, Member, Object};

/// Every emitted type, in definition order.
pub(crate) fn emit(ctx: &Ctx) -> Result<TokenStream, EmitError> {
    let mut out = TokenStream::new();
    for &tid in &ctx.emitted {
        let e = ctx.schema.entity(tid);
        let name = id(&ctx.type_names[&tid]);
        out.extend(match &e.kind {
            EntityKind::Enum(en) => emit_enum(ctx, e, &name, en),
            EntityKind::Object(o) if o.branches.is_some() => emit_union(ctx, tid, e, &name, o)?,
            EntityKind::Object(o) => emit_struct(ctx, tid, e, &name, o)?,
            EntityKind::Alternate(a) => emit_alternate(ctx, tid, e, &name, a)?,
            _ => TokenStream::new(),
        });
    }
    Ok(out)
}

fn emit_enum(ctx: &Ctx, e: &Entity, name: &Ident, en: &Enum) -> TokenStream {
    let docs = ctx.entity_docs(e, "enum");
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let mut namer = Namer::default();
    let variants: Vec<(Ident, &str, TokenStream)> = en
        .members
        .iter()
        .map(|m| {
            let v = id(&namer.unique(names::camel_ident(&m.name)));
            let mut lines = ctx.member_doc_lines(e, &m.name);
            if let Some(c) = &m.ifcond {
                lines.push(String::new());
                lines.push(format!(
                    "Only in QEMU builds where `{}` holds.",
                    super::ifcond_str(c)
                ));
            }
            let mut attrs = docs_attrs(&lines);
            attrs.extend(ctx.deprecated_attr(Some(e), &m.features));
            (v, m.name.as_str(), attrs)
        })
        .collect();
    let unknown = id(&namer.unique("Unknown".to_owned()));
    let defs = variants.iter().map(|(v, _, attrs)| quote!(#attrs #v,));
    let to_str = variants.iter().map(|(v, w, _)| quote!(Self::#v => #w,));
    let from_str = variants.iter().map(|(v, w, _)| quote!(#w => Self::#v,));
    quote! {
        #docs
        #dep
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum #name {
            #(#defs)*
            /// A value these bindings do not know (from a newer QEMU), kept as sent.
            #unknown(::std::string::String),
        }
        impl #name {
            /// The value as it appears on the wire.
            #[inline]
            pub fn as_str(&self) -> &str {
                match self {
                    #(#to_str)*
                    Self::#unknown(s) => s,
                }
            }
            /// The value for a wire string; unknown strings are kept in the catch-all.
            #[inline]
            pub fn from_wire(s: &str) -> Self {
                match s {
                    #(#from_str)*
                    _ => Self::#unknown(::std::borrow::ToOwned::to_owned(s)),
                }
            }
        }
        ::qmp::__qapi_enum_serde!(#name);
    }
}

/// The pieces of a struct made from QAPI members.
pub(crate) struct Fields {
    /// Field definitions, with attributes.
    pub defs: Vec<TokenStream>,
    /// Parameters of `new` (required members), as `ident: Type`.
    pub params: Vec<TokenStream>,
    /// Initializers for `new`: `ident` or `ident: None`.
    pub inits: Vec<TokenStream>,
    /// Setters for optional members.
    pub setters: Vec<TokenStream>,
    /// True if every member is optional.
    pub all_optional: bool,
}

/// Fields for `members` (skipping the one named `skip`), documented from `owner` (or
/// the type each member is defined in), in namespace `namer`.
pub(crate) fn fields(
    ctx: &Ctx,
    owner: &Entity,
    owner_id: Option<EntityId>,
    members: &[Member],
    skip: Option<&str>,
    from: Module,
    namer: &mut Namer,
) -> Result<Fields, EmitError> {
    let mut f = Fields {
        defs: Vec::new(),
        params: Vec::new(),
        inits: Vec::new(),
        setters: Vec::new(),
        all_optional: true,
    };
    for m in members.iter().filter(|m| Some(m.name.as_str()) != skip) {
        let rust = namer.unique(names::snake_ident(&m.name));
        let field = id(&rust);
        let ty = ctx.member_type(owner_id, m.ty, from)?;
        let doc_owner = ctx
            .schema
            .lookup(&m.defined_in)
            .filter(|d| d.doc.is_some())
            .unwrap_or(owner);
        let mut lines = ctx.member_doc_lines(doc_owner, &m.name);
        if m.features.iter().any(|f| f.is_unstable()) {
            lines.push(String::new());
            lines.push("**Unstable:** experimental (QAPI feature `unstable`).".to_owned());
        }
        if let Some(c) = &m.ifcond {
            lines.push(String::new());
            lines.push(format!(
                "Only in QEMU builds where `{}` holds.",
                super::ifcond_str(c)
            ));
        }
        let docs = docs_attrs(&lines);
        let dep = ctx.deprecated_attr(Some(doc_owner), &m.features);
        let wire = &m.name;
        // serde strips `r#`, so a raw identifier needs no rename.
        let rename = if field.to_string().trim_start_matches("r#") == wire {
            quote!()
        } else {
            quote!(rename = #wire,)
        };
        if m.optional {
            let three_state = if ctx.admits_null(m.ty) {
                quote!(deserialize_with = "::qmp::runtime::deserialize_some",)
            } else {
                quote!()
            };
            f.defs.push(quote! {
                #docs
                #dep
                #[serde(#rename default, #three_state skip_serializing_if = "::std::option::Option::is_none")]
                pub #field: ::std::option::Option<#ty>,
            });
            f.inits.push(quote!(#field: ::std::option::Option::None));
            let set = setter(&rust);
            let set_doc = format!(" Sets `{wire}`.");
            f.setters.push(quote! {
                #[doc = #set_doc]
                #dep
                #[inline]
                pub fn #set(mut self, value: #ty) -> Self {
                    self.#field = ::std::option::Option::Some(value);
                    self
                }
            });
        } else {
            f.all_optional = false;
            let attr = if rename.is_empty() {
                quote!()
            } else {
                quote!(#[serde(#rename)])
            };
            f.defs.push(quote! {
                #docs
                #dep
                #attr
                pub #field: #ty,
            });
            f.params.push(quote!(#field: #ty));
            f.inits.push(quote!(#field));
        }
    }
    Ok(f)
}

fn emit_struct(
    ctx: &Ctx,
    tid: EntityId,
    e: &Entity,
    name: &Ident,
    o: &Object,
) -> Result<TokenStream, EmitError> {
    let docs = ctx.entity_docs(e, "struct");
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let f = fields(
        ctx,
        e,
        Some(tid),
        &o.members,
        None,
        Module::Types,
        &mut Namer::default(),
    )?;
    Ok(struct_with_ctor(&docs, &dep, name, &f, quote!()))
}

/// A struct with `new` and setters; `extra` adds fields after the members.
pub(crate) fn struct_with_ctor(
    docs: &TokenStream,
    dep: &TokenStream,
    name: &Ident,
    f: &Fields,
    extra: TokenStream,
) -> TokenStream {
    let Fields {
        defs,
        params,
        inits,
        setters,
        all_optional,
    } = f;
    let default = if *all_optional && extra.is_empty() {
        quote!(Default,)
    } else {
        quote!()
    };
    quote! {
        #docs
        #dep
        #[derive(Clone, Debug, #default PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[non_exhaustive]
        pub struct #name {
            #(#defs)*
            #extra
        }
        impl #name {
            /// Creates the value from its required members; optional ones are unset.
            #[inline]
            pub fn new(#(#params),*) -> Self {
                Self { #(#inits,)* }
            }
            #(#setters)*
        }
    }
}

fn emit_union(
    ctx: &Ctx,
    tid: EntityId,
    e: &Entity,
    name: &Ident,
    o: &Object,
) -> Result<TokenStream, EmitError> {
    let Some(br) = &o.branches else {
        return Ok(TokenStream::new());
    };
    let docs = ctx.entity_docs(e, "union");
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let tag = &br.tag_member.name;
    let mut namer = Namer::default();
    let mut f = fields(
        ctx,
        e,
        Some(tid),
        &o.members,
        Some(tag),
        Module::Types,
        &mut namer,
    )?;
    let tag_field = id(&namer.unique(names::snake_ident(tag)));
    let branch_name = id(&ctx.branch_names[&tid]);
    let tag_doc = format!(" The discriminator `{tag}` together with the members of its branch.");
    f.params.push(quote!(#tag_field: #branch_name));
    f.inits.push(quote!(#tag_field));
    f.all_optional = false;
    let extra = quote! {
        #[doc = #tag_doc]
        #[serde(flatten)]
        pub #tag_field: #branch_name,
    };
    let strukt = struct_with_ctor(&docs, &dep, name, &f, extra);

    // One variant per value of the discriminator's enum, in the enum's order.
    let tag_enum = match &ctx.schema.entity(br.tag_member.ty).kind {
        EntityKind::Enum(en) => en,
        _ => {
            return Err(EmitError::Model(format!(
                "discriminator `{tag}` of `{}` is not an enum",
                e.name
            )))
        }
    };
    let mut vnamer = Namer::default();
    let mut defs = Vec::new();
    let mut ser = Vec::new();
    let mut de = Vec::new();
    for v in &tag_enum.members {
        let vid = id(&vnamer.unique(names::camel_ident(&v.name)));
        let wire = &v.name;
        let branch = br
            .variants
            .iter()
            .find(|b| &b.name == wire)
            .filter(|b| !super::is_empty_branch(ctx.schema, b.ty));
        let vdoc = format!(" `{tag}` is `{wire}`.");
        match branch {
            Some(b) => {
                let ty = ctx.member_type(Some(tid), b.ty, Module::Types)?;
                defs.push(quote!(#[doc = #vdoc] #vid(#ty),));
                ser.push(quote!(Self::#vid(b) => ::qmp::runtime::serialize_branch(s, #tag, #wire, ::std::option::Option::Some(b)),));
                de.push(quote!(#wire => Self::#vid(::qmp::runtime::from_members(rest)?),));
            }
            None => {
                defs.push(quote!(#[doc = #vdoc] #vid,));
                ser.push(quote!(Self::#vid => ::qmp::runtime::serialize_branch::<_, ()>(s, #tag, #wire, ::std::option::Option::None),));
                de.push(quote!(#wire => Self::#vid,));
            }
        }
    }
    let unknown = id(&vnamer.unique("Unknown".to_owned()));
    let branch_doc = format!(" The branches of [`{name}`], selected by its discriminator `{tag}`.");
    Ok(quote! {
        #strukt
        #[doc = #branch_doc]
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum #branch_name {
            #(#defs)*
            /// A discriminator value these bindings do not know (from a newer QEMU),
            /// with the branch's members as sent.
            #unknown {
                /// The discriminator's value.
                value: ::std::string::String,
                /// The branch's members.
                members: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
            },
        }
        impl ::serde::Serialize for #branch_name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                match self {
                    #(#ser)*
                    Self::#unknown { value, members } => ::qmp::runtime::serialize_branch(s, #tag, value, ::std::option::Option::Some(members)),
                }
            }
        }
        impl<'de> ::serde::Deserialize<'de> for #branch_name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                ::qmp::runtime::deserialize_branches(d)
            }
        }
        impl ::qmp::runtime::Branches for #branch_name {
            const TAG: &'static str = #tag;
            #[inline]
            fn from_tag(
                tag: &str,
                rest: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
            ) -> ::std::result::Result<Self, ::serde_json::Error> {
                ::std::result::Result::Ok(match tag {
                    #(#de)*
                    _ => Self::#unknown { value: ::std::borrow::ToOwned::to_owned(tag), members: rest },
                })
            }
        }
    })
}

fn emit_alternate(
    ctx: &Ctx,
    tid: EntityId,
    e: &Entity,
    name: &Ident,
    a: &Alternate,
) -> Result<TokenStream, EmitError> {
    let docs = ctx.entity_docs(e, "alternate");
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let mut namer = Namer::default();
    let mut variants = Vec::new();
    for v in &a.alternatives.variants {
        let vid = id(&namer.unique(names::camel_ident(&v.name)));
        let ty = ctx.member_type(Some(tid), v.ty, Module::Types)?;
        let lines = ctx.member_doc_lines(e, &v.name);
        let vdocs = docs_attrs(&lines);
        variants.push(quote!(#vdocs #vid(#ty),));
    }
    Ok(quote! {
        #docs
        #dep
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(untagged)]
        pub enum #name {
            #(#variants)*
        }
    })
}

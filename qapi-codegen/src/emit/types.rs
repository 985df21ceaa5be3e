//! Types: enums, structs, unions and alternates, into `pub mod types`.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::names::{self, Namer};
use super::{docs_attrs, id, setter, Ctx, EmitError, Module};
use crate::model::{Alternate, Builtin, Entity, EntityId, EntityKind, Enum, Member, Object, Part};

/// Every emitted type, in definition order.
pub(crate) fn emit(ctx: &Ctx) -> Result<TokenStream, EmitError> {
    let mut out = TokenStream::new();
    for &tid in &ctx.emitted {
        let e = ctx.schema.entity(tid);
        let name = id(&ctx.type_names[&tid]);
        out.extend(match &e.kind {
            EntityKind::Enum(en) => emit_enum(ctx, tid, e, &name, en),
            EntityKind::Object(o) if o.branches.is_some() => emit_union(ctx, tid, e, &name, o)?,
            EntityKind::Object(o) => emit_struct(ctx, tid, e, &name, o)?,
            EntityKind::Alternate(a) => emit_alternate(ctx, tid, e, &name, a)?,
            _ => TokenStream::new(),
        });
    }
    Ok(out)
}

fn emit_enum(ctx: &Ctx, tid: EntityId, e: &Entity, name: &Ident, en: &Enum) -> TokenStream {
    let mut docs = ctx.entity_docs(e, "enum");
    docs.extend(super::doc_alias(&name.to_string(), &e.name));
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let mut namer = Namer::default();
    let variants: Vec<(Ident, &str, TokenStream)> = en
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let rust = namer.unique(names::camel_ident(&m.name));
            let v = id(&rust);
            let mut lines = ctx.member_doc_lines(e, "Value", &m.name);
            if i == 0 {
                lines.push(String::new());
                lines.push("The `Default`: the first value, as in protobuf.".to_owned());
            }
            lines.extend(ctx.item_notes(
                m.ifcond.as_ref(),
                Some(tid),
                &Part::Value(m.name.clone()),
            ));
            let mut attrs = docs_attrs(&lines);
            attrs.extend(super::doc_alias(&rust, &m.name));
            attrs.extend(ctx.deprecated_attr(Some(e), &m.features));
            if i == 0 {
                attrs.extend(quote!(#[default]));
            }
            (v, m.name.as_str(), attrs)
        })
        .collect();
    let unknown = id(&namer.unique("Unknown".to_owned()));
    let defs = variants.iter().map(|(v, _, attrs)| quote!(#attrs #v,));
    let to_str = variants.iter().map(|(v, w, _)| quote!(Self::#v => #w,));
    let from_str = variants.iter().map(|(v, w, _)| quote!(#w => Self::#v,));
    // An enum's default is its first value (as protobuf's and prost's are), so that
    // the structs holding it can derive `Default` too (`Ctx::has_default`).
    let default = if en.members.is_empty() {
        quote!()
    } else {
        quote!(Default,)
    };
    quote! {
        #docs
        #dep
        #[derive(Clone, Debug, #default PartialEq, Eq, Hash)]
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

/// The fields of a struct made from QAPI members, one [`Field`] per member in order:
/// the intermediate form between the model's members and the struct, its `new`, its
/// setters and its `Record` implementation, which [`struct_with_ctor`] and
/// [`record_impl`] read.
pub(crate) struct Fields {
    /// The members' fields.
    pub members: Vec<Field>,
}

impl Fields {
    /// True if every member is optional.
    pub(crate) fn all_optional(&self) -> bool {
        self.members.iter().all(|f| f.param.is_none())
    }

    /// True if every member's field has a `Default` (optional ones are `None`).
    pub(crate) fn all_default(&self) -> bool {
        self.members.iter().all(|f| f.has_default)
    }
}

/// One QAPI member as a Rust field: everything the generated code needs of it, kept
/// together (so the struct, `new`, the setters and the `Record` pieces cannot fall out
/// of step).
pub(crate) struct Field {
    /// The field's definition, with its docs.
    pub def: TokenStream,
    /// The parameter of `new` (`ident: Type`), for a required member.
    pub param: Option<TokenStream>,
    /// The initializer in `new`: `ident` or `ident: None`.
    pub init: TokenStream,
    /// The `with_*` setter.
    pub setter: Option<TokenStream>,
    /// True if the field's type has a `Default`.
    pub has_default: bool,
    /// The slot's type (`Option<T>`): a field of the slots struct.
    pub slot: TokenStream,
    /// The arm of `take`'s `match key`.
    pub take: TokenStream,
    /// The field's initializer in `finish`.
    pub finish: TokenStream,
    /// The statement of `put` that writes it.
    pub put: TokenStream,
}

/// A field after the QAPI members that takes every member they do not: a union's
/// branch, or a `gen: false` command's undeclared arguments.
pub(crate) struct RestField {
    /// The field's definition (with docs).
    pub def: TokenStream,
    /// Its parameter of `new`, if it is one.
    pub param: Option<TokenStream>,
    /// Its initializer in `new`.
    pub init: TokenStream,
    /// A setter, if it has one.
    pub setter: Option<TokenStream>,
    /// The field's name.
    pub field: Ident,
    /// The type of its slot (the last of the slots struct, after the members').
    pub slot: TokenStream,
    /// Takes a member into the slot (an expression using `slots.N`, `key`, `map`).
    pub take: TokenStream,
    /// The field's value from `slots.N` in `finish` (may use `?`).
    pub finish: TokenStream,
    /// Writes the field's members into `m` (a statement).
    pub put: TokenStream,
}

/// Fields for `members` (skipping the one named `skip`), documented from `owner` (or
/// the type each member is defined in), in namespace `namer`. `holder` is the object
/// type whose members they are (a command's or event's arguments type), `owner_id`
/// the type the fields go into (`None` for a command's or event's struct).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fields(
    ctx: &Ctx,
    owner: &Entity,
    owner_id: Option<EntityId>,
    holder: Option<EntityId>,
    members: &[Member],
    skip: Option<&str>,
    from: Module,
    namer: &mut Namer,
) -> Result<Fields, EmitError> {
    let mut f = Fields {
        members: Vec::with_capacity(members.len()),
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
        // The manual documents a member under the named type that defines it (a
        // base struct), or under the command or type itself.
        let link_to = ctx
            .schema
            .lookup(&m.defined_in)
            .filter(|d| !d.implicit)
            .unwrap_or(owner);
        let mut lines = ctx.field_doc_lines(doc_owner, link_to, m);
        lines.extend(ctx.item_notes(m.ifcond.as_ref(), holder, &Part::Member(m.name.clone())));
        let mut docs = docs_attrs(&lines);
        docs.extend(super::doc_alias(&rust, &m.name));
        let dep = ctx.deprecated_attr(Some(doc_owner), &m.features);
        let wire = &m.name;
        let slot = proc_macro2::Literal::usize_unsuffixed(f.members.len());
        // `impl Into<T>` where that cannot make a literal ambiguous (see
        // `Ctx::takes_into`); a boxed member takes the unboxed value too.
        let (param_ty, value) = if ctx.takes_into(m.ty) {
            (quote!(impl ::std::convert::Into<#ty>), quote!(value.into()))
        } else {
            (ty.clone(), quote!(value))
        };
        let set = setter(&rust);
        let set_doc = format!(" Sets `{wire}`.");
        // A member under a condition is absent from the QEMU builds that leave it
        // out, required or not (`deprecated-props` of `query-cpu-model-expansion`
        // exists on s390x only): the bindings, built for every target, make it
        // optional, so such a reply still decodes.
        f.members.push(if m.optional || m.ifcond.is_some() {
            // `null` is a value of types that admit it (three states: absent, null,
            // value); for the others it means absent, as serde's `Option` reads it.
            let take = if ctx.admits_null(m.ty) {
                quote!(slot)
            } else {
                quote!(slot_opt)
            };
            Field {
                def: quote! {
                    #docs
                    #dep
                    pub #field: ::std::option::Option<#ty>,
                },
                param: None,
                init: quote!(#field: ::std::option::Option::None),
                setter: Some(quote! {
                    #[doc = #set_doc]
                    #dep
                    #[inline]
                    pub fn #set(mut self, value: #param_ty) -> Self {
                        self.#field = ::std::option::Option::Some(#value);
                        self
                    }
                }),
                has_default: true,
                slot: quote!(::std::option::Option<#ty>),
                take: quote!(#wire => ::qmp::runtime::#take(&mut slots.#slot, key, map),),
                finish: quote!(#field: slots.#slot),
                put: quote!(::qmp::runtime::put_opt(m, #wire, &self.#field)?;),
            }
        } else {
            Field {
                def: quote! {
                    #docs
                    #dep
                    pub #field: #ty,
                },
                param: Some(quote!(#field: #param_ty)),
                init: if ctx.takes_into(m.ty) {
                    quote!(#field: #field.into())
                } else {
                    quote!(#field)
                },
                setter: Some(quote! {
                    #[doc = #set_doc]
                    #dep
                    #[inline]
                    pub fn #set(mut self, value: #param_ty) -> Self {
                        self.#field = #value;
                        self
                    }
                }),
                has_default: ctx.has_default(m.ty),
                slot: quote!(::std::option::Option<#ty>),
                take: quote!(#wire => ::qmp::runtime::slot(&mut slots.#slot, key, map),),
                finish: quote!(#field: ::qmp::runtime::required(slots.#slot, #wire)?),
                put: quote!(::serde::ser::SerializeMap::serialize_entry(m, #wire, &self.#field)?;),
            }
        });
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
        Some(tid),
        &o.members,
        None,
        Module::Types,
        &mut Namer::default(),
    )?;
    let mut docs = docs;
    docs.extend(super::doc_alias(&name.to_string(), &e.name));
    let default = ctx.defaultable.contains(&tid);
    Ok(struct_with_ctor(
        &docs, &dep, name, &e.name, &f, None, default,
    ))
}

/// A struct with `new` and setters, and its `Record` implementation; `rest` adds a
/// field after the members that takes every other member. `default`: it derives
/// `Default` (the caller knows every field has one).
pub(crate) fn struct_with_ctor(
    docs: &TokenStream,
    dep: &TokenStream,
    name: &Ident,
    qapi_name: &str,
    f: &Fields,
    rest: Option<&RestField>,
    default: bool,
) -> TokenStream {
    let defs = f.members.iter().map(|x| &x.def);
    let params = f
        .members
        .iter()
        .filter_map(|x| x.param.as_ref())
        .chain(rest.and_then(|r| r.param.as_ref()));
    let inits = f
        .members
        .iter()
        .map(|x| &x.init)
        .chain(rest.map(|r| &r.init));
    let setters = f
        .members
        .iter()
        .filter_map(|x| x.setter.as_ref())
        .chain(rest.and_then(|r| r.setter.as_ref()));
    let default = if default { quote!(Default,) } else { quote!() };
    let extra = rest.map(|r| r.def.clone());
    let record = record_impl(name, qapi_name, &f.members, rest);
    quote! {
        #docs
        #dep
        #[derive(Clone, #default PartialEq)]
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
        #record
    }
}

/// `impl qmp::runtime::Record` for struct `name` (with its hidden slots struct) and
/// its `Serialize`/`Deserialize` through that impl: a few lines per member instead of
/// serde's derive (see `qmp::runtime` for why).
pub(crate) fn record_impl(
    name: &Ident,
    qapi_name: &str,
    members: &[Field],
    rest: Option<&RestField>,
) -> TokenStream {
    let slots_name = quote::format_ident!("{}__Slots", name.to_string().trim_start_matches("r#"));
    let mut slot_tys: Vec<TokenStream> = members.iter().map(|f| f.slot.clone()).collect();
    let mut finishes: Vec<TokenStream> = members.iter().map(|f| f.finish.clone()).collect();
    let mut puts: Vec<TokenStream> = members.iter().map(|f| f.put.clone()).collect();
    let fallback = match rest {
        Some(rest) => {
            slot_tys.push(rest.slot.clone());
            let field = &rest.field;
            let finish = &rest.finish;
            finishes.push(quote!(#field: #finish));
            puts.push(rest.put.clone());
            rest.take.clone()
        }
        None => quote!(::std::result::Result::Ok(false)),
    };
    let takes: Vec<&TokenStream> = members.iter().map(|f| &f.take).collect();
    let take_body = if takes.is_empty() {
        fallback
    } else {
        quote! {
            match key {
                #(#takes)*
                _ => #fallback,
            }
        }
    };
    // Unused parameters are named `_` so that records without members stay
    // warning-free.
    let (slots_p, key_p, map_p) = if takes.is_empty() && rest.is_none() {
        (quote!(_), quote!(_), quote!(_))
    } else {
        (quote!(slots), quote!(key), quote!(map))
    };
    let finish_p = if finishes.is_empty() {
        quote!(_)
    } else {
        quote!(slots)
    };
    let m_p = if puts.is_empty() {
        quote!(_)
    } else {
        quote!(m)
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Default)]
        pub struct #slots_name(#(#slot_tys,)*);
        impl ::qmp::runtime::Record for #name {
            const NAME: &'static str = #qapi_name;
            type Slots = #slots_name;
            fn take<'de, A: ::serde::de::MapAccess<'de>>(
                #slots_p: &mut #slots_name,
                #key_p: &str,
                #map_p: &mut A,
            ) -> ::std::result::Result<bool, A::Error> {
                #take_body
            }
            fn finish<E: ::serde::de::Error>(#finish_p: #slots_name) -> ::std::result::Result<Self, E> {
                ::std::result::Result::Ok(Self { #(#finishes,)* })
            }
            fn put<M: ::serde::ser::SerializeMap>(&self, #m_p: &mut M) -> ::std::result::Result<(), M::Error> {
                #(#puts)*
                ::std::result::Result::Ok(())
            }
        }
        ::qmp::__qapi_record_serde!(#name);
        ::qmp::__qapi_record_debug!(#name);
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
    let mut doc_lines = ctx.entity_doc_lines(e, "union");
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let tag = &br.tag_member.name;
    let mut namer = Namer::default();
    let f = fields(
        ctx,
        e,
        Some(tid),
        Some(tid),
        &o.members,
        Some(tag),
        Module::Types,
        &mut namer,
    )?;
    let tag_field = id(&namer.unique(names::snake_ident(tag)));
    let branch_name = id(&ctx.branch_names[&tid]);
    let mut tag_lines = vec![format!(
        "The discriminator `{tag}` together with the members of its branch."
    )];
    tag_lines.extend(ctx.item_notes(None, Some(tid), &Part::Member(tag.clone())));
    if br.tag_member.optional {
        tag_lines.push(String::new());
        tag_lines.push(format!(
            "A value without `{tag}` (from a release where this type has no branches) \
             is the catch-all variant, with an empty `value` and the members."
        ));
    }
    let tag_doc = docs_attrs(&tag_lines);
    let i = proc_macro2::Literal::usize_unsuffixed(f.members.len());
    let rest = RestField {
        def: quote! {
            #tag_doc
            pub #tag_field: #branch_name,
        },
        param: Some(quote!(#tag_field: impl ::std::convert::Into<#branch_name>)),
        init: quote!(#tag_field: #tag_field.into()),
        setter: None,
        field: tag_field.clone(),
        slot: quote!(::qmp::runtime::UnionSlots<#branch_name>),
        take: quote!(slots.#i.take(key, map)),
        finish: if br.tag_member.optional {
            quote!(slots.#i.finish_untagged()?)
        } else {
            quote!(slots.#i.finish()?)
        },
        put: quote!(::qmp::runtime::Branches::put(&self.#tag_field, m)?;),
    };

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
    let slots_name = quote::format_ident!(
        "{}__Slots",
        branch_name.to_string().trim_start_matches("r#")
    );
    let mut vnamer = Namer::default();
    let mut defs = Vec::new();
    let mut slot_defs = Vec::new();
    let mut starts = Vec::new();
    let mut takes = Vec::new();
    let mut finishes = Vec::new();
    let mut puts = Vec::new();
    // (variant, its unboxed type, boxed, the type's id) of each branch with members.
    let mut typed: Vec<(Ident, TokenStream, bool, EntityId)> = Vec::new();
    for v in &tag_enum.members {
        let vrust = vnamer.unique(names::camel_ident(&v.name));
        let vid = id(&vrust);
        let wire = &v.name;
        let branch = br
            .variants
            .iter()
            .find(|b| &b.name == wire)
            .filter(|b| !super::is_empty_branch(ctx.schema, b.ty));
        let mut vlines = vec![format!("`{tag}` is `{wire}`.")];
        vlines.extend(ctx.item_notes(None, Some(tid), &Part::Branch(wire.clone())));
        let mut vdoc = docs_attrs(&vlines);
        vdoc.extend(super::doc_alias(&vrust, wire));
        match branch {
            Some(b) => {
                let ty = ctx.member_type(Some(tid), b.ty, Module::Types)?;
                // The branch's own type does the work; a boxed branch (it closes a
                // cycle) is decoded unboxed and boxed at the end.
                let inner = ctx.rust_type(b.ty, Module::Types)?;
                let boxed = ctx.boxed.contains(&(tid, b.ty));
                typed.push((vid.clone(), inner.clone(), boxed, b.ty));
                defs.push(quote!(#vdoc #vid(#ty),));
                slot_defs.push(quote!(#vid(<#inner as ::qmp::runtime::Record>::Slots),));
                starts
                    .push(quote!(#wire => #slots_name::#vid(::std::default::Default::default()),));
                takes.push(quote!(#slots_name::#vid(s) => <#inner as ::qmp::runtime::Record>::take(s, key, map),));
                let value = quote!(<#inner as ::qmp::runtime::Record>::finish(s)?);
                let value = if boxed {
                    quote!(::std::boxed::Box::new(#value))
                } else {
                    value
                };
                finishes.push(quote!(#slots_name::#vid(s) => Self::#vid(#value),));
                let b = if boxed { quote!(&**b) } else { quote!(b) };
                puts.push(quote!(Self::#vid(b) => {
                    ::serde::ser::SerializeMap::serialize_entry(m, #tag, #wire)?;
                    <#inner as ::qmp::runtime::Record>::put(#b, m)
                }));
            }
            None => {
                defs.push(quote!(#vdoc #vid,));
                slot_defs.push(quote!(#vid,));
                starts.push(quote!(#wire => #slots_name::#vid,));
                takes.push(quote!(#slots_name::#vid => ::std::result::Result::Ok(false),));
                finishes.push(quote!(#slots_name::#vid => Self::#vid,));
                puts.push(quote!(Self::#vid => ::serde::ser::SerializeMap::serialize_entry(m, #tag, #wire),));
            }
        }
    }
    let unknown = id(&vnamer.unique("Unknown".to_owned()));
    // Without a discriminator (a release where the type had no branches), none is
    // written back.
    let put_unknown_tag = if br.tag_member.optional {
        quote! {
            if !value.is_empty() {
                ::serde::ser::SerializeMap::serialize_entry(m, #tag, value)?;
            }
        }
    } else {
        quote!(::serde::ser::SerializeMap::serialize_entry(m, #tag, value)?;)
    };
    // `From` for each branch type that only one branch has (with two, which variant
    // a value means is the caller's to say), for the branch enum, and for the whole
    // union when nothing else is required.
    let whole = f.all_optional();
    let mut froms = TokenStream::new();
    let mut shared: Vec<String> = Vec::new();
    for (vid, inner, boxed, ty) in &typed {
        if typed.iter().filter(|t| t.3 == *ty).count() > 1 {
            let t = ctx.qapi_type(*ty);
            if !shared.contains(&t) {
                shared.push(t);
            }
            continue;
        }
        let value = if *boxed {
            quote!(::std::boxed::Box::new(value))
        } else {
            quote!(value)
        };
        froms.extend(quote! {
            impl ::std::convert::From<#inner> for #branch_name {
                #[inline]
                fn from(value: #inner) -> Self {
                    Self::#vid(#value)
                }
            }
        });
        if whole {
            froms.extend(quote! {
                impl ::std::convert::From<#inner> for #name {
                    #[inline]
                    fn from(value: #inner) -> Self {
                        Self::new(#branch_name::from(value))
                    }
                }
            });
        }
    }
    if whole {
        froms.extend(quote! {
            impl ::std::convert::From<#branch_name> for #name {
                #[inline]
                fn from(value: #branch_name) -> Self {
                    Self::new(value)
                }
            }
        });
    }
    doc_lines.push(String::new());
    doc_lines.push(if whole {
        format!(
            "Build it from the value of a branch: `{name}::from(value)` (its other \
             members unset) or `{branch_name}::from(value)`."
        )
    } else {
        format!(
            "It has required members besides `{tag}`, so it has no `From` a branch's \
             value: build it with `new`, giving the branch as `{branch_name}::from(value)`."
        )
    });
    if !shared.is_empty() {
        doc_lines.push(format!(
            "Some types are the type of several branches, so no `From` converts them: {}; \
             name the variant.",
            shared
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    doc_lines.push(BOXING_RULE.to_owned());
    let mut docs = docs_attrs(&doc_lines);
    docs.extend(super::doc_alias(&name.to_string(), &e.name));
    let strukt = struct_with_ctor(&docs, &dep, name, &e.name, &f, Some(&rest), false);
    let branch_doc = format!(" The branches of [`{name}`], selected by its discriminator `{tag}`.");
    Ok(quote! {
        #strukt
        #froms
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
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        pub enum #slots_name {
            #(#slot_defs)*
            #unknown(::std::string::String, ::serde_json::Map<::std::string::String, ::serde_json::Value>),
        }
        impl ::qmp::runtime::Branches for #branch_name {
            const TAG: &'static str = #tag;
            type Slots = #slots_name;
            fn start(tag: &str) -> #slots_name {
                match tag {
                    #(#starts)*
                    _ => #slots_name::#unknown(::std::borrow::ToOwned::to_owned(tag), ::serde_json::Map::new()),
                }
            }
            fn take<'de, A: ::serde::de::MapAccess<'de>>(
                slots: &mut #slots_name,
                key: &str,
                map: &mut A,
            ) -> ::std::result::Result<bool, A::Error> {
                match slots {
                    #(#takes)*
                    #slots_name::#unknown(_, members) => ::qmp::runtime::slot_extra(members, key, map),
                }
            }
            fn finish<E: ::serde::de::Error>(slots: #slots_name) -> ::std::result::Result<Self, E> {
                ::std::result::Result::Ok(match slots {
                    #(#finishes)*
                    #slots_name::#unknown(value, members) => Self::#unknown { value, members },
                })
            }
            fn put<M: ::serde::ser::SerializeMap>(&self, m: &mut M) -> ::std::result::Result<(), M::Error> {
                match self {
                    #(#puts)*
                    Self::#unknown { value, members } => {
                        #put_unknown_tag
                        ::qmp::runtime::put_extra(m, members)
                    }
                }
            }
        }
    })
}

/// The boxing rule of union branches, in each union's docs (the rule is
/// `cycles.rs`'s, seen from a union).
const BOXING_RULE: &str = "A branch is boxed (`Box<T>`) exactly when its type contains this \
     union again (otherwise the union would be infinitely large); `From` does the boxing, \
     so `Box::new` is never needed.";

fn emit_alternate(
    ctx: &Ctx,
    tid: EntityId,
    e: &Entity,
    name: &Ident,
    a: &Alternate,
) -> Result<TokenStream, EmitError> {
    let mut docs = ctx.entity_docs(e, "alternate");
    docs.extend(super::doc_alias(&name.to_string(), &e.name));
    let dep = ctx.deprecated_attr(Some(e), &e.features);
    let mut namer = Namer::default();
    let mut variants = Vec::new();
    let mut sers = Vec::new();
    let mut decodes = Vec::new();
    // A JSON integer goes to an integer branch, or else to a `number` one.
    let has_int = a
        .alternatives
        .variants
        .iter()
        .any(|v| json_kinds(ctx, v.ty).contains(&"Int"));
    for v in &a.alternatives.variants {
        let vid = id(&namer.unique(names::camel_ident(&v.name)));
        let ty = ctx.member_type(Some(tid), v.ty, Module::Types)?;
        let mut lines = ctx.member_doc_lines(e, "Alternative", &v.name);
        // (Alternatives never had an `if` note: only their availability.)
        lines.extend(ctx.item_notes(None, Some(tid), &Part::Alternative(v.name.clone())));
        let vdocs = docs_attrs(&lines);
        variants.push(quote!(#vdocs #vid(#ty),));
        sers.push(quote!(Self::#vid(v) => ::serde::Serialize::serialize(v, s),));
        let mut kinds = json_kinds(ctx, v.ty).to_vec();
        if kinds == ["Number"] && !has_int {
            kinds.push("Int");
        }
        let kinds = kinds.iter().map(|k| {
            let k = quote::format_ident!("{k}");
            quote!(::qmp::runtime::JsonKind::#k)
        });
        decodes.push(quote!(#(#kinds)|* => Self::#vid(::serde::Deserialize::deserialize(d)?),));
    }
    let qapi_name = &e.name;
    Ok(quote! {
        #docs
        #dep
        #[derive(Clone, Debug, PartialEq)]
        pub enum #name {
            #(#variants)*
        }
        impl ::serde::Serialize for #name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                match self {
                    #(#sers)*
                }
            }
        }
        impl<'de> ::serde::Deserialize<'de> for #name {
            #[inline]
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                ::qmp::runtime::deserialize_alternate(d)
            }
        }
        impl ::qmp::runtime::Alternate for #name {
            const NAME: &'static str = #qapi_name;
            #[allow(unreachable_patterns)]
            fn decode<'de, D: ::serde::Deserializer<'de>>(
                kind: ::qmp::runtime::JsonKind,
                d: D,
            ) -> ::std::result::Result<::std::option::Option<Self>, D::Error> {
                ::std::result::Result::Ok(::std::option::Option::Some(match kind {
                    #(#decodes)*
                    _ => return ::std::result::Result::Ok(::std::option::Option::None),
                }))
            }
        }
    })
}

/// The JSON kinds (names of `qmp::runtime::JsonKind` variants) a value of type `ty`
/// can have, which decide an alternate's branch.
fn json_kinds(ctx: &Ctx, ty: EntityId) -> &'static [&'static str] {
    match &ctx.schema.entity(ty).kind {
        EntityKind::Builtin(b) => match b {
            Builtin::Str => &["String"],
            Builtin::Number => &["Number"],
            Builtin::Bool => &["Bool"],
            Builtin::Null => &["Null"],
            Builtin::Any => &["Null", "Bool", "Int", "Number", "String", "Object", "Array"],
            _ => &["Int"],
        },
        EntityKind::Enum(_) => &["String"],
        EntityKind::Object(_) => &["Object"],
        EntityKind::Array(_) => &["Array"],
        _ => &[],
    }
}

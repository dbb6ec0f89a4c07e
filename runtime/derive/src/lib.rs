//! `#[derive(HeapType)]`: makes a struct or an enum allocatable in minigo's heap as `Gc<'gc, T>`.
//!
//! 1. **Structs** get an exact layout (their size and which 8-byte words are pointers)
//!    from their fields: each field's type implements `minigo_runtime::GcField`, which says
//!    where its own pointer words are; the derive adds each field's `offset_of!`. `Gc`,
//!    `Option<Gc>`, `GcCell`, `GcSlice`, `GcStr` and nested derived types contribute
//!    pointers; numbers, `bool`, `char`, `Cell`s of those and arrays of anything `GcField`
//!    are scalars or repeat. A field of any other type (a `String`, a `Vec`: memory the
//!    collector cannot see or free) is a compile error, which is the point.
//! 2. **Enums** (an interpreter's tagged `Value`): where a variant's fields sit is not
//!    something stable Rust can name (`offset_of!` on variants is unstable), and one word
//!    may be a pointer in one variant and a number in another. So an enum with a pointer in
//!    any variant has every word marked as a pointer word: the collector then treats its
//!    scalar words as it treats a goroutine stack's, as candidate addresses (one that
//!    lands inside an allocated object keeps it alive; any other is ignored). The price is
//!    precision: a number that falls inside the heap's range may keep an object alive,
//!    and verify mode may report one that falls between objects as a dangling pointer
//!    (`docs/embedding.md`, the value-encoding contract). An enum without pointers is a
//!    scalar. And the words a variant does not use must not hold stale pointers, which a
//!    copy leaves there: `clear_slack` rebuilds the active variant from its fields over
//!    zeroed bytes when the value enters the heap (structs call their enum fields').
//! 3. **The brand.** A type that holds handles has their lifetime, `'gc` by convention
//!    (`struct Node<'gc> { next: Option<Gc<'gc, Node<'gc>>> }`): lifetimes are erased
//!    before code is generated, so a type generic over lifetimes only keeps its layout in
//!    a `static`, as a non-generic type does.
//! 4. **Types with type parameters** get the bounds their fields need
//!    (`FieldType: GcField`), and a layout computed once per instantiation and found by
//!    its `pointer_words` function (a read-locked map lookup per allocation; not by
//!    `TypeId`, which needs `'static`).
//! 5. **`#[minigo(crate = "path")]`** names the runtime crate when it is renamed or
//!    re-exported (default `::minigo_runtime`).
//!
//! Types that need `Drop` are rejected at compile time: the collector frees objects
//! without running code. So are `#[repr(packed)]` types, whose pointers need not sit on the
//! word boundaries the collector reads.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, Type};

/// See the crate documentation.
#[proc_macro_derive(HeapType, attributes(minigo))]
pub fn derive_heap_type(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The crate path from `#[minigo(crate = "...")]`, or `::minigo_runtime`.
fn runtime_path(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let mut path = quote!(::minigo_runtime);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("minigo")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let s: syn::LitStr = meta.value()?.parse()?;
                let p: syn::Path = s.parse()?;
                path = quote!(#p);
                Ok(())
            } else {
                Err(meta.error("unknown minigo attribute; expected `crate = \"...\"`"))
            }
        })?;
    }
    Ok(path)
}

/// (member, type) of each field, for `offset_of!`.
fn members(fields: &Fields) -> Vec<(TokenStream2, Type)> {
    match fields {
        Fields::Named(f) => f
            .named
            .iter()
            .map(|f| {
                let id = f.ident.clone().expect("named field");
                (quote!(#id), f.ty.clone())
            })
            .collect(),
        Fields::Unnamed(f) => f
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let idx = syn::Index::from(i);
                (quote!(#idx), f.ty.clone())
            })
            .collect(),
        Fields::Unit => vec![],
    }
}

/// Rejects `#[repr(packed)]`: a packed type's pointer fields need not be word-aligned,
/// and the collector reads pointer words at word boundaries.
fn reject_packed(input: &DeriveInput) -> syn::Result<()> {
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let syn::Meta::List(list) = &attr.meta else {
            continue;
        };
        let packed = list
            .tokens
            .clone()
            .into_iter()
            .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "packed"));
        if packed {
            return Err(syn::Error::new_spanned(
                attr,
                "#[derive(HeapType)] does not support #[repr(packed)]: the collector reads \
                 pointers at word boundaries",
            ));
        }
    }
    Ok(())
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    reject_packed(input)?;
    let rt = runtime_path(input)?;
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let this = quote!(#name #ty_generics);

    // The field impls: exact for structs, every word for enums with a pointer anywhere.
    let (field_types, mask, pointer_words, slack, clear_slack, tear_safe) = match &input.data {
        Data::Struct(data) => {
            let (members, types): (Vec<_>, Vec<_>) = members(&data.fields).into_iter().unzip();
            let mask = quote! {
                0 #( | #rt::shift_mask(<#types as #rt::GcField>::MASK, ::core::mem::offset_of!(#this, #members) / 8) )*
            };
            let words = quote! {
                #( <#types as #rt::GcField>::pointer_words(offset + ::core::mem::offset_of!(#this, #members), out); )*
            };
            // A struct's padding is in no pointer word; only its enum fields have slack.
            let slack = quote!(false #( || <#types as #rt::GcField>::SLACK )*);
            let clear = quote! {
                #(
                    if <#types as #rt::GcField>::SLACK {
                        // SAFETY: the field of a valid, writable value (the caller's).
                        unsafe { <#types as #rt::GcField>::clear_slack(::core::ptr::addr_of_mut!((*p).#members)) };
                    }
                )*
            };
            // Whole words of valid values make a valid struct when each field's do, or
            // the field lies inside one word (a word-aligned struct puts it there always).
            let tear_safe = quote! {
                true #( && (<#types as #rt::GcField>::TEAR_SAFE
                    || (::core::mem::align_of::<#this>() >= 8
                        && #rt::within_word(
                            ::core::mem::offset_of!(#this, #members),
                            ::core::mem::size_of::<#types>(),
                        ))) )*
            };
            (types, mask, words, slack, clear, tear_safe)
        }
        Data::Enum(data) => {
            let types: Vec<Type> = data
                .variants
                .iter()
                .flat_map(|v| members(&v.fields).into_iter().map(|(_, t)| t))
                .collect();
            let any = quote!(false #( || #rt::may_hold_pointers::<#types>() )*);
            let mask = quote! {
                if #any { #rt::all_words_mask(::core::mem::size_of::<#this>()) } else { 0 }
            };
            let words = quote! {
                if #any {
                    for w in 0..::core::mem::size_of::<#this>() / 8 {
                        out.push(offset / 8 + w);
                    }
                }
            };
            // Each variant rebuilt from its fields over zeroed bytes, then its fields'
            // own slack cleared (see `GcField::clear_slack`).
            let arms = data.variants.iter().map(|v| {
                let vname = &v.ident;
                let binds: Vec<syn::Ident> = (0..v.fields.len())
                    .map(|i| quote::format_ident!("__f{i}"))
                    .collect();
                let tys: Vec<&Type> = v.fields.iter().map(|f| &f.ty).collect();
                let (pat, build) = match &v.fields {
                    Fields::Named(f) => {
                        let names: Vec<_> = f.named.iter().map(|f| f.ident.clone()).collect();
                        (
                            quote!(Self::#vname { #( #names: #binds ),* }),
                            quote!(Self::#vname { #( #names: #binds ),* }),
                        )
                    }
                    Fields::Unnamed(_) => (
                        quote!(Self::#vname( #( #binds ),* )),
                        quote!(Self::#vname( #( #binds ),* )),
                    ),
                    Fields::Unit => (quote!(Self::#vname), quote!(Self::#vname)),
                };
                quote! {
                    #pat => {
                        // SAFETY: `p` is valid and writable (the caller's); its value was
                        // moved out above and is written back whole, field by field.
                        unsafe {
                            ::core::ptr::write_bytes(p as *mut u8, 0, ::core::mem::size_of::<Self>());
                            ::core::ptr::write(p, #build);
                        }
                        // SAFETY: `p` holds this variant again, just written.
                        if let #pat = unsafe { &mut *p } {
                            #(
                                if <#tys as #rt::GcField>::SLACK {
                                    // SAFETY: a field of the valid value at `p`.
                                    unsafe { <#tys as #rt::GcField>::clear_slack(#binds as *mut #tys) };
                                }
                            )*
                        }
                    }
                }
            });
            let clear = quote! {
                if #any {
                    // SAFETY: `p` is valid (the caller's); it is written back in every arm.
                    match unsafe { ::core::ptr::read(p) } {
                        #( #arms )*
                    }
                }
            };
            // An enum is read whole only if it is one word at most and no alignment lets
            // it straddle two: its tag and payload then come from one write.
            let tear_safe = quote! {
                ::core::mem::size_of::<#this>() <= 8
                    && ::core::mem::size_of::<#this>() <= ::core::mem::align_of::<#this>()
            };
            (types, mask, words, any, clear, tear_safe)
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                name,
                "#[derive(HeapType)] supports structs and enums, not unions",
            ))
        }
    };

    let type_generic = input.generics.type_params().next().is_some()
        || input.generics.const_params().next().is_some();
    let mut bounds: Vec<TokenStream2> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    // Only type parameters need the fields' bounds. A bound that names no type parameter
    // is checked here, at the definition, where the field's error belongs; as a where
    // clause it would only make the impl silently not apply.
    if type_generic {
        bounds.extend(field_types.iter().map(|t| quote!(#t: #rt::GcField)));
    }
    let layout = if type_generic {
        quote!(#rt::cached_layout::<Self>())
    } else {
        quote! {
            static LAYOUT: ::std::sync::OnceLock<#rt::Layout> = ::std::sync::OnceLock::new();
            LAYOUT.get_or_init(|| #rt::layout_of::<Self>())
        }
    };

    Ok(quote! {
        // SAFETY: a struct reports each field's pointer words at the field's offset (from
        // the field type's own GcField impl), and no other word holds a pointer into the
        // heap; an enum with a pointer in any variant reports every word, so every word
        // that may hold one is a pointer word.
        unsafe impl #impl_generics #rt::GcField for #this where #(#bounds),* {
            const MASK: u64 = #mask;
            const SLACK: bool = #slack;
            const TEAR_SAFE: bool = #tear_safe;
            fn pointer_words(offset: usize, out: &mut ::std::vec::Vec<usize>) {
                #pointer_words
            }
            #[allow(unused_variables, irrefutable_let_patterns, clippy::unnecessary_cast)]
            unsafe fn clear_slack(p: *mut Self) {
                #clear_slack
            }
        }

        // SAFETY: the layout is built from the GcField impl above, and the type has no
        // drop glue (checked at compile time below), so the collector may free it without
        // running code.
        unsafe impl #impl_generics #rt::HeapType for #this where #(#bounds),* {
            fn layout() -> &'static #rt::Layout {
                const {
                    assert!(
                        !::core::mem::needs_drop::<Self>(),
                        "a HeapType must not need Drop: the collector frees objects without running destructors"
                    )
                };
                #layout
            }
        }
    })
}

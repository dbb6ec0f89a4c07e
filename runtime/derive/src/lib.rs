//! `#[derive(HeapType)]`: makes a struct allocatable in minigo's heap as `Gc<T>`.
//!
//! The derive computes the struct's layout (its size and which 8-byte words are pointers)
//! from its fields: each field's type implements `minigo_runtime::GcField`, which says where
//! its own pointer words are; the derive adds each field's `offset_of!`. `Gc`, `Option<Gc>`,
//! `GcCell`, `GcSlice`, `GcStr` and nested derived structs contribute pointers; numbers,
//! `bool`, `char`, `Cell`s of those and arrays of anything `GcField` are scalars or repeat.
//! A field of any other type (a `String`, a `Vec`: memory the collector cannot see or free)
//! is a compile error, which is the point.
//!
//! Generic structs are rejected: the layout is computed once and cached per type.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

/// See the crate documentation.
#[proc_macro_derive(HeapType)]
pub fn derive_heap_type(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return syn::Error::new_spanned(
            &input.generics,
            "#[derive(HeapType)] does not support generic types",
        )
        .to_compile_error()
        .into();
    }
    let Data::Struct(data) = &input.data else {
        return syn::Error::new_spanned(name, "#[derive(HeapType)] supports structs only")
            .to_compile_error()
            .into();
    };
    let (members, types): (Vec<_>, Vec<_>) = match &data.fields {
        Fields::Named(f) => f
            .named
            .iter()
            .map(|f| {
                let id = f.ident.clone().expect("named field");
                (quote!(#id), f.ty.clone())
            })
            .unzip(),
        Fields::Unnamed(f) => f
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let idx = syn::Index::from(i);
                (quote!(#idx), f.ty.clone())
            })
            .unzip(),
        Fields::Unit => (vec![], vec![]),
    };
    let rt = quote!(::minigo_runtime);
    quote! {
        // SAFETY: each field's pointer words are reported at the field's offset by its own
        // GcField impl; no other word of the struct holds a pointer into the heap.
        unsafe impl #rt::GcField for #name {
            const MASK: u64 = 0 #( | #rt::shift_mask(<#types as #rt::GcField>::MASK, ::core::mem::offset_of!(#name, #members) / 8) )*;
            fn pointer_words(offset: usize, out: &mut ::std::vec::Vec<usize>) {
                #( <#types as #rt::GcField>::pointer_words(offset + ::core::mem::offset_of!(#name, #members), out); )*
            }
        }

        // SAFETY: the layout is built from the GcField impl above, and the struct has no
        // drop glue (checked below), so the collector may free it without running code.
        unsafe impl #rt::HeapType for #name {
            fn layout() -> &'static #rt::Layout {
                const _: () = assert!(
                    !::core::mem::needs_drop::<#name>(),
                    "a HeapType must not need Drop: the collector frees objects without running destructors"
                );
                static LAYOUT: ::std::sync::OnceLock<#rt::Layout> = ::std::sync::OnceLock::new();
                LAYOUT.get_or_init(|| #rt::layout_of::<#name>())
            }
        }
    }
    .into()
}

//! `#[derive(Serialize, Deserialize)]` for the types `wasmtime::component::bindgen!` generates
//! from the WIT (named in its `additional_derives`), so that JSON speaks the WIT's names.
//!
//! Serde's own derives would spell a case as Rust does (`Spend`, `AutoApprove`), and bindgen
//! offers no way to add `#[serde(rename)]`. These derives read the name bindgen records on
//! every case (`#[component(name = "auto-approve")]`) and hand a copy of the type with that
//! rename, and the Rust spelling as an alias, to serde's derive as a remote definition: JSON
//! is written with the WIT's names, and both spellings are read (runs recorded before are
//! still replayed). Records keep their Rust field names (`dealer_id`), as before.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, parse_macro_input};

#[proc_macro_derive(Serialize)]
pub fn derive_serialize(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let shadow = match shadow(&input) {
        Ok(shadow) => shadow,
        Err(error) => return error.to_compile_error().into(),
    };
    let shadow_name = format_ident!("__Wit{name}");
    quote! {
        const _: () = {
            #[derive(::serde::Serialize)]
            #shadow
            impl ::serde::Serialize for #name {
                fn serialize<S: ::serde::Serializer>(
                    &self,
                    serializer: S,
                ) -> ::core::result::Result<S::Ok, S::Error> {
                    #shadow_name::serialize(self, serializer)
                }
            }
        };
    }
    .into()
}

#[proc_macro_derive(Deserialize)]
pub fn derive_deserialize(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let shadow = match shadow(&input) {
        Ok(shadow) => shadow,
        Err(error) => return error.to_compile_error().into(),
    };
    let shadow_name = format_ident!("__Wit{name}");
    quote! {
        const _: () = {
            #[derive(::serde::Deserialize)]
            #shadow
            impl<'de> ::serde::Deserialize<'de> for #name {
                fn deserialize<D: ::serde::Deserializer<'de>>(
                    deserializer: D,
                ) -> ::core::result::Result<Self, D::Error> {
                    #shadow_name::deserialize(deserializer)
                }
            }
        };
    }
    .into()
}

/// The remote definition serde derives from: the type's fields or cases, each case renamed to
/// its WIT name with the Rust name as an alias.
fn shadow(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let remote = name.to_string();
    let shadow = format_ident!("__Wit{name}");
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "WIT types have no generic parameters",
        ));
    }
    Ok(match &input.data {
        Data::Struct(data) => {
            let Fields::Named(fields) = &data.fields else {
                return Err(syn::Error::new_spanned(
                    name,
                    "a WIT record has named fields",
                ));
            };
            let fields = fields.named.iter().map(|field| {
                let ident = &field.ident;
                let ty = &field.ty;
                quote! { #ident: #ty }
            });
            quote! {
                #[serde(remote = #remote)]
                struct #shadow { #(#fields),* }
            }
        }
        Data::Enum(data) => {
            let mut cases = Vec::new();
            for case in &data.variants {
                let ident = &case.ident;
                let rust = ident.to_string();
                let wit = wit_name(&case.attrs).unwrap_or_else(|| rust.clone());
                let alias = (wit != rust).then(|| quote! { , alias = #rust });
                let payload = match &case.fields {
                    Fields::Unit => quote! {},
                    Fields::Unnamed(fields) => {
                        let types = fields.unnamed.iter().map(|field| &field.ty);
                        quote! { (#(#types),*) }
                    }
                    Fields::Named(_) => {
                        return Err(syn::Error::new_spanned(
                            case,
                            "a WIT case has at most one payload",
                        ));
                    }
                };
                cases.push(quote! { #[serde(rename = #wit #alias)] #ident #payload });
            }
            quote! {
                #[serde(remote = #remote)]
                enum #shadow { #(#cases),* }
            }
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(name, "WIT has no unions"));
        }
    })
}

/// The WIT name bindgen recorded for a case: `#[component(name = "auto-approve")]`.
fn wit_name(attrs: &[Attribute]) -> Option<String> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("component"))
        .find_map(|attr| {
            let mut found = None;
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    found = Some(meta.value()?.parse::<LitStr>()?.value());
                }
                Ok(())
            })
            .ok()?;
            found
        })
}

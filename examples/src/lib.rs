//! minigo-examples: what runs on minigo. The `minigo` CLI (`cli`, driven by src/main.rs)
//! and its mutator workloads (`workloads`), and the Lox interpreter (`lox`), the first
//! language embedded in minigo's heap.

pub mod cli;
pub mod lox;
pub mod workloads;

//! minigo-examples: what runs on minigo. The `minigo` CLI (src/main.rs) and its mutator
//! workloads, and the Lox interpreter (`lox`), the first language embedded in minigo's heap.

pub mod lox;

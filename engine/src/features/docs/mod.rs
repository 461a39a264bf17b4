//! Shared plain-text documents with operational transform (issue: live collaboration).
//!
//! Invariant: a document lives on its owner shard only; every change is transformed and
//! applied there, in one order, so every editor converges on the owner's text.

pub mod document;
pub mod limits;
pub mod operation;

#[cfg(test)]
mod ot_tests;

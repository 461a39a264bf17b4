//! The binary's subcommands besides the server itself.

pub mod chat;
mod chat_view;

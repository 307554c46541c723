//! The scenarios, one module each.

pub mod chat;
pub mod connect;
pub mod echo;
pub mod fanout;
pub mod idle;
pub mod soak;

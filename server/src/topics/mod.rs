//! Topics: who may read and publish what ([`rules`]), and how fast one
//! publisher may publish ([`quota`]). Every endpoint that subscribes or
//! publishes, REST and WebSocket alike, asks here.

pub mod quota;
pub mod rules;

pub use quota::{PublishQuota, Publisher};
pub use rules::{may_publish, may_read, Refusal};

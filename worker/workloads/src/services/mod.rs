//! What the workloads share: the HTTP client layer ([`http`]), fleet-wide rate limits kept
//! in the store ([`limits`]) and the mail transports ([`mail`]). The apply workload reuses
//! them (and adds secrets, quotas and the browser pool here).

pub mod browser;
pub mod http;
pub mod limits;
pub mod mail;

pub use http::{Auth, CallError, Reply, Request, Secret, Service};
pub use limits::Limiter;
pub use mail::{Message, Outcome, Transport};

//! hearth-console: the appliance's web console and JSON API.
//!
//! What it is for: everything an operator, admin or auditor does over HTTPS — the one-time
//! setup claim, logins and sessions, users and roles, API tokens, the audit log, attestation
//! evidence bound to the console's TLS key and the audit head, system status, unlocking a
//! locked store with the recovery key, and the AI factory's datasets and training jobs
//! ([`datasets`], [`jobs`]), the model registry and egress policy ([`models`]) and serving
//! endpoints with their API keys ([`endpoints`]). The JSON API ([`api`]) and the HTML pages ([`pages`])
//! are thin layers over one service layer ([`service`]); one table ([`routes::ROUTES`])
//! decides who may call what.
//!
//! What it is not for: listening on sockets, TLS, configuration and start-up (hearthd does
//! those and hands this crate a ready [`App`]).
//!
//! Invariants:
//! - A route missing from [`routes::ROUTES`] is refused; a route's roles are checked before
//!   its handler runs.
//! - Every mutating action writes a started audit record before it acts and fails if it
//!   cannot; its outcome is recorded after ([`App::audited`]).
//! - Form posts and cookie-authenticated mutations carry a CSRF token; cookies are `__Host-`,
//!   Secure, HttpOnly, SameSite=Strict.
//! - Passwords are argon2id hashes; session ids and token secrets are stored only as SHA-256;
//!   none of them reach logs or `Debug`.

pub mod api;
pub mod app;
pub mod auth;
pub mod compute;
pub mod datasets;
pub mod endpoints;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod models;
pub mod pages;
pub mod routes;
pub mod service;

pub use app::{Actor, App, ConsoleConfig, ServiceError, TlsIdentity};
pub use model::UserRole;
pub use routes::{ClientAddr, ROUTES, RouteSpec, router};

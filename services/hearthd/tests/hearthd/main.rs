//! hearthd end to end: the real binary, its own swtpm and data directory, HTTPS clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod browser;
mod harness;
mod locked;
mod ml;
mod models;
mod web;

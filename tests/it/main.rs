//! The integration tests: one binary (one link, one process to schedule), one module per
//! area. Every test starts the real application through `common` and talks HTTP to it.

mod common;

mod acme;
mod acme_client;
mod agent;

mod api_strict;
mod audit;
mod auth;
mod backup;
mod browser;
mod ca_migration;
mod catalogue;
mod cli;
mod cli_cover;
mod console;
mod load;
mod names;
mod notifications;
mod ocsp;
mod operations;
mod pg_cluster;
mod pkcs11;
mod pki;
mod profile;
mod properties;
mod renewal;
mod tokens;

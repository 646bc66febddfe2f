//! hostca: a certificate authority for the hosts of one security domain.

pub mod acme;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
pub mod models;
pub mod names;
pub mod pki;
pub mod secrets;
pub mod services;
pub mod startup;
pub mod tls;
pub mod token_value;
pub mod valid_for;
pub mod web;

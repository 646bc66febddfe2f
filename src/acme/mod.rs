//! ACME (RFC 8555) for hosts that already run an ACME client. Built a piece at a time for
//! issue 12; see docs/DESIGN.md "ACME". So far: reading and verifying the JSON Web
//! Signatures every ACME request is (`jws`), with External Account Binding.

pub mod jws;

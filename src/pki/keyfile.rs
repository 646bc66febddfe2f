//! CA keys kept as files in the data directory: PKCS #8, sealed with ChaCha20-Poly1305
//! under the data directory's token key (the file's name as associated data, so a key
//! file cannot be swapped for another CA's). A copy of the key files alone, without
//! `token.key`, gives away nothing. An installation from before the hierarchy keeps its
//! plain `ca.key` as it was.

use std::path::Path;

use rcgen::KeyPair;

use super::PkiError;
use crate::secrets::TokenKey;

const MAGIC: &[u8] = b"HOSTCA-CA-KEY-1\n";

/// Writes a new key file (mode 0600, never over an existing one).
pub fn save(dir: &Path, name: &str, key: &KeyPair, wrap: &TokenKey) -> Result<(), PkiError> {
    check_name(name)?;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&wrap.encrypt(&aad(name), &key.serialize_pem()));
    let path = dir.join(name);
    crate::secrets::write_private_file(&path, &bytes)
        .map_err(|e| PkiError::internal(format!("cannot write {}: {e}", path.display())))
}

/// Reads a key file: sealed, or the plain PKCS #8 PEM of an older installation.
pub fn load(dir: &Path, name: &str, wrap: &TokenKey) -> Result<KeyPair, PkiError> {
    check_name(name)?;
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| {
        PkiError::internal(format!(
            "cannot read the CA key {} ({e}): restore it from a backup of the data directory; \
             hostca will not create another CA in its place",
            path.display()
        ))
    })?;
    let pem = match bytes.strip_prefix(MAGIC) {
        Some(sealed) => wrap.decrypt(&aad(name), sealed).map_err(|_| {
            PkiError::internal(format!(
                "{} cannot be decrypted with this data directory's token.key: restore the matching pair",
                path.display()
            ))
        })?,
        None => String::from_utf8(bytes)
            .map_err(|_| PkiError::internal(format!("{} is not a key file", path.display())))?,
    };
    KeyPair::from_pem(&pem)
        .map_err(|e| PkiError::internal(format!("{} is not a usable key: {e}", path.display())))
}

fn aad(name: &str) -> String {
    format!("ca-key:{name}")
}

/// A key file's name is one plain file name in the data directory: a row edited to point
/// elsewhere (`../`, an absolute path) is refused.
fn check_name(name: &str) -> Result<(), PkiError> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if plain {
        Ok(())
    } else {
        Err(PkiError::internal(format!(
            "'{name}' is not a key file name in the data directory"
        )))
    }
}

/// A new key file's name: `ca-<role>-<6 hex>.key`.
pub fn new_name(role: &str) -> String {
    let mut b = [0u8; 3];
    rand::fill(&mut b[..]);
    format!("ca-{role}-{}.key", hex::encode(b))
}

//! The data directory's secret files: the session cookie key and the key that protects
//! token values at rest. Both are created once with mode 0600 and reused afterwards.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AppError;

pub const SESSION_KEY_FILE: &str = "session.key";
pub const TOKEN_KEY_FILE: &str = "token.key";

/// Writes a file that only the server's user may read. Fails if it already exists, so a
/// secret is never overwritten.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Reads `len` random bytes from `path`, creating the file on first start.
pub fn load_or_create_key(path: &Path, len: usize) -> Result<Vec<u8>, AppError> {
    if path.exists() {
        let bytes = fs::read(path)
            .map_err(|e| AppError::internal_from(format!("cannot read {}", path.display()), e))?;
        if bytes.len() != len {
            return Err(AppError::internal(format!(
                "{} holds {} bytes, expected {len}: restore it from a backup",
                path.display(),
                bytes.len()
            )));
        }
        return Ok(bytes);
    }
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    write_private_file(path, &bytes)
        .map_err(|e| AppError::internal_from(format!("cannot write {}", path.display()), e))?;
    Ok(bytes)
}

/// Whether a file is readable by its owner only.
pub fn is_private(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 == 0)
        .unwrap_or(false)
}

/// Encrypts token values (ChaCha20-Poly1305, the token name as associated data so a value
/// cannot be moved to another row) and computes the keyed digest used to find a token by
/// its value without decrypting every row.
#[derive(Clone)]
pub struct TokenKey {
    cipher: ChaCha20Poly1305,
    mac_key: [u8; 32],
}

impl TokenKey {
    pub fn from_bytes(bytes: &[u8]) -> TokenKey {
        let (enc, mac) = bytes.split_at(32);
        let mut mac_key = [0u8; 32];
        mac_key.copy_from_slice(&mac[..32]);
        TokenKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(enc)),
            mac_key,
        }
    }

    pub fn load_or_create(data_dir: &Path) -> Result<TokenKey, AppError> {
        Ok(TokenKey::from_bytes(&load_or_create_key(
            &data_dir.join(TOKEN_KEY_FILE),
            64,
        )?))
    }

    pub fn encrypt(&self, name: &str, value: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce[..]);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of a short value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, name: &str, stored: &[u8]) -> Result<String, AppError> {
        if stored.len() < 12 {
            return Err(AppError::internal("stored token value is truncated"));
        }
        let (nonce, sealed) = stored.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                AppError::internal(format!(
                    "the value of token {name} cannot be decrypted with this data directory's key"
                ))
            })?;
        String::from_utf8(plain).map_err(|_| AppError::internal("token value is not UTF-8"))
    }

    /// A keyed tag over `parts` for `purpose` (each part length-prefixed, so parts cannot
    /// be shifted into each other), hex encoded: what proves a row was written by a
    /// process holding this data directory's key.
    pub fn tag(&self, purpose: &str, parts: &[&[u8]]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC accepts any key length");
        mac.update(purpose.as_bytes());
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Keyed digest of a canonical token value, hex encoded.
    pub fn digest(&self, canonical_value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC accepts any key length");
        mac.update(canonical_value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

pub const AUDIT_KEY_FILE: &str = "audit.key";

/// The key of the audit chain's HMAC. It lives only in the data directory (and in
/// backups): someone who can write the database but not read this file cannot forge an
/// event that verifies.
#[derive(Clone)]
pub struct AuditKey {
    mac: Hmac<Sha256>,
    id: String,
}

impl AuditKey {
    pub fn from_bytes(bytes: &[u8]) -> AuditKey {
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC accepts any key length");
        let mut m = mac.clone();
        m.update(b"hostca audit key id");
        let id = hex::encode(&m.finalize().into_bytes()[..16]);
        AuditKey { mac, id }
    }

    /// Reads `<data_dir>/audit.key`, creating it (32 random bytes, mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<AuditKey, AppError> {
        Ok(AuditKey::from_bytes(&load_or_create_key(
            &data_dir.join(AUDIT_KEY_FILE),
            32,
        )?))
    }

    /// Reads an existing key (for `hostca audit verify`, which must not create one).
    pub fn load(data_dir: &Path) -> Result<AuditKey, AppError> {
        let path = data_dir.join(AUDIT_KEY_FILE);
        if !path.exists() {
            return Err(AppError::BadRequest(format!(
                "no audit key at {}: pass the server's --data-dir",
                path.display()
            )));
        }
        AuditKey::load_or_create(data_dir)
    }

    /// A public identifier of the key: an HMAC of a constant, so it reveals nothing of it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A fresh HMAC state keyed with this key (cloned: the key schedule is done once).
    pub fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

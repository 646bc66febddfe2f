//! CA keys inside a PKCS#11 token (an HSM, or SoftHSMv2 in CI), named by an RFC 7512 URI
//! (`pkcs11:token=hostca;object=issuing`). The private key never leaves the token: hostca
//! hashes ECDSA input itself, the token signs, and ECDSA's raw `r||s` is re-encoded as the
//! DER that X.509 wants.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::{AuthPin, Ulong};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use sha2::{Digest, Sha256, Sha384};

use super::signer::CaKeyType;
use super::PkiError;

const URI_EXAMPLE: &str = "pkcs11:token=hostca;object=issuing";

const PIN_VALUE_REFUSED: &str = "the PKCS#11 URI carries a PIN (pin-value), which would end up in \
     process listings, shell history and logs: remove it, and give the PIN with \
     --pkcs11-pin-file, HOSTCA_PKCS11_PIN_FILE or HOSTCA_PKCS11_PIN, never the command line";

/// DER of the named-curve OIDs, as CKA_EC_PARAMS holds them.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Idle sessions kept per key. Signers beyond that open and close their own, so a burst
/// cannot hold on to more of the token's sessions (some HSMs have few) than this.
const POOL_MAX: usize = 8;

fn bad(msg: impl Into<String>) -> PkiError {
    PkiError::BadInput(msg.into())
}

/// What an RFC 7512 URI says about the key and where it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pkcs11Uri {
    token: Option<String>,
    serial: Option<String>,
    manufacturer: Option<String>,
    model: Option<String>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    module_path: Option<PathBuf>,
    pin_source: Option<PathBuf>,
}

impl Pkcs11Uri {
    /// Messages never quote attribute values: a mistyped URI may still hold a secret.
    fn parse(uri: &str) -> Result<Pkcs11Uri, PkiError> {
        let uri = uri.trim();
        let rest = uri
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &uri[7..])
            .ok_or_else(|| {
                bad(format!(
                    "a PKCS#11 key is named by an RFC 7512 URI that starts with pkcs11:, \
                     like {URI_EXAMPLE}"
                ))
            })?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut out = Pkcs11Uri::default();
        let mut seen: Vec<&str> = Vec::new();
        for (part, separator, text) in [("path", ';', path), ("query", '&', query)] {
            for attr in text.split(separator).filter(|a| !a.is_empty()) {
                let Some((name, raw)) = attr.split_once('=') else {
                    return Err(bad(
                        "the PKCS#11 URI has an attribute without '=': attributes are name=value, \
                         separated by ';' before the '?' and by '&' after it",
                    ));
                };
                if name == "pin-value" {
                    return Err(bad(PIN_VALUE_REFUSED));
                }
                if seen.contains(&name) {
                    return Err(bad(format!(
                        "the PKCS#11 URI gives {name} twice: give it once"
                    )));
                }
                seen.push(name);
                let value = percent_decode(raw, name)?;
                if value.is_empty() {
                    return Err(bad(format!(
                        "the PKCS#11 URI's {name} is empty: give a value or leave {name} out"
                    )));
                }
                match (part, name) {
                    ("path", "token") => out.token = Some(text_value(name, value)?),
                    ("path", "serial") => out.serial = Some(text_value(name, value)?),
                    ("path", "manufacturer") => out.manufacturer = Some(text_value(name, value)?),
                    ("path", "model") => out.model = Some(text_value(name, value)?),
                    ("path", "object") => out.object = Some(text_value(name, value)?),
                    ("path", "id") => out.id = Some(value),
                    ("path", "type") => {
                        if value != b"private" {
                            return Err(bad(
                                "hostca signs with a private key: the PKCS#11 URI's type must \
                                 be private, or left out",
                            ));
                        }
                    }
                    ("query", "module-path") => {
                        out.module_path = Some(PathBuf::from(text_value(name, value)?))
                    }
                    ("query", "pin-source") => {
                        out.pin_source = Some(pin_source(&text_value(name, value)?)?)
                    }
                    ("path", "module-path" | "pin-source") => {
                        return Err(bad(format!(
                            "{name} belongs in the PKCS#11 URI's query, after '?': \
                             {URI_EXAMPLE}?{name}=..."
                        )))
                    }
                    ("query", "module-name") => {
                        return Err(bad(
                            "the PKCS#11 URI attribute module-name is not supported: give the \
                             module's file with --pkcs11-module, HOSTCA_PKCS11_MODULE or \
                             module-path=/path/to/module.so",
                        ))
                    }
                    (_, other) => {
                        return Err(bad(format!(
                            "the PKCS#11 URI attribute {other} is not supported here: hostca \
                             reads token, object, id, serial, manufacturer, model and \
                             type=private before the '?', and module-path and \
                             pin-source=file:/path after it"
                        )))
                    }
                }
            }
        }
        if out.object.is_none() && out.id.is_none() {
            return Err(bad(format!(
                "the PKCS#11 URI names no key: add object=LABEL (the key's CKA_LABEL) or \
                 id=%.. (its CKA_ID), like {URI_EXAMPLE}"
            )));
        }
        Ok(out)
    }

    /// What the URI asks of the token, for messages.
    fn token_wanted(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("label", &self.token),
            ("serial", &self.serial),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name} \"{v}\""));
            }
        }
        if parts.is_empty() {
            "any token".into()
        } else {
            format!("token with {}", parts.join(", "))
        }
    }

    fn matches(&self, info: &TokenInfo) -> bool {
        fn same(wanted: &Option<String>, actual: &str) -> bool {
            wanted
                .as_deref()
                .is_none_or(|w| w.trim_end() == actual.trim_end())
        }
        same(&self.token, info.label())
            && same(&self.serial, info.serial_number())
            && same(&self.manufacturer, info.manufacturer_id())
            && same(&self.model, info.model())
    }
}

fn text_value(name: &str, value: Vec<u8>) -> Result<String, PkiError> {
    String::from_utf8(value).map_err(|_| {
        bad(format!(
            "the PKCS#11 URI's {name} is not UTF-8 text once percent-decoded"
        ))
    })
}

fn percent_decode(raw: &str, name: &str) -> Result<Vec<u8>, PkiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
            .ok_or_else(|| {
                bad(format!(
                    "the PKCS#11 URI's {name} has a '%' not followed by two hex digits: \
                     write a literal '%' as %25"
                ))
            })?;
        out.push(byte);
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 unreserved characters stay, everything else (`;`, `?`, `%`, spaces, non-ASCII)
/// is escaped, so the URI reads back the same; `all` escapes every byte (for CKA_ID, which
/// is binary).
fn percent_encode(bytes: &[u8], all: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if !all && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn pin_source(value: &str) -> Result<PathBuf, PkiError> {
    let path = value
        .strip_prefix("file:")
        .map(|rest| rest.strip_prefix("//").unwrap_or(rest))
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            bad(
                "the PKCS#11 URI's pin-source must name a file by its absolute path \
                 (pin-source=file:/path/to/pin); hostca reads a PIN from nothing else",
            )
        })?;
    Ok(PathBuf::from(path))
}

/// Where the PKCS#11 module is and the user PIN, from flags, the environment or the URI.
#[derive(Clone)]
pub struct Pkcs11Settings {
    pub module: PathBuf,
    pub pin: String,
}

impl std::fmt::Debug for Pkcs11Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Settings")
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Settings {
    /// The module from `--pkcs11-module` / `HOSTCA_PKCS11_MODULE` or the URI's
    /// `module-path`; the PIN from `--pkcs11-pin-file` / `HOSTCA_PKCS11_PIN_FILE`,
    /// `HOSTCA_PKCS11_PIN`, or the URI's `pin-source=file:...`. Never a PIN in the URI.
    pub fn resolve(
        uri: &str,
        module: Option<&Path>,
        pin_file: Option<&Path>,
    ) -> Result<Pkcs11Settings, PkiError> {
        resolve_with(uri, module, pin_file, &|name| std::env::var_os(name))
    }
}

/// `resolve` with the environment passed in, so that tests need not change the process's.
fn resolve_with(
    uri: &str,
    module: Option<&Path>,
    pin_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Pkcs11Settings, PkiError> {
    let parsed = Pkcs11Uri::parse(uri)?;
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let module = module
        .map(Path::to_path_buf)
        .or_else(|| env("HOSTCA_PKCS11_MODULE").map(PathBuf::from))
        .or(parsed.module_path)
        .ok_or_else(|| {
            bad(
                "no PKCS#11 module: give the path of the token's module with --pkcs11-module, \
                 HOSTCA_PKCS11_MODULE or the URI's module-path (for SoftHSMv2: \
                 /usr/lib/softhsm/libsofthsm2.so)",
            )
        })?;
    let pin = if let Some(file) = pin_file {
        read_pin_file(file, "--pkcs11-pin-file")?
    } else if let Some(file) = env("HOSTCA_PKCS11_PIN_FILE") {
        read_pin_file(Path::new(&file), "HOSTCA_PKCS11_PIN_FILE")?
    } else if let Some(pin) = env("HOSTCA_PKCS11_PIN") {
        let pin = pin
            .into_string()
            .map_err(|_| bad("HOSTCA_PKCS11_PIN is not UTF-8 text"))?;
        trim_pin(pin)
    } else if let Some(file) = &parsed.pin_source {
        read_pin_file(file, "the URI's pin-source")?
    } else {
        return Err(bad(
            "no PIN for the PKCS#11 token: put it in a file named by --pkcs11-pin-file or \
             HOSTCA_PKCS11_PIN_FILE (or the URI's pin-source=file:/path), or set \
             HOSTCA_PKCS11_PIN",
        ));
    };
    if pin.is_empty() {
        return Err(bad(
            "the PIN for the PKCS#11 token is empty: check --pkcs11-pin-file, \
             HOSTCA_PKCS11_PIN_FILE, HOSTCA_PKCS11_PIN or the URI's pin-source",
        ));
    }
    Ok(Pkcs11Settings { module, pin })
}

fn read_pin_file(path: &Path, from: &str) -> Result<String, PkiError> {
    let pin = std::fs::read_to_string(path).map_err(|e| {
        bad(format!(
            "cannot read the PKCS#11 PIN file {} (from {from}): {e}",
            path.display()
        ))
    })?;
    Ok(trim_pin(pin))
}

/// `echo PIN > file` leaves a newline that is not part of the PIN.
fn trim_pin(pin: String) -> String {
    let len = pin.trim_end_matches(['\r', '\n']).len();
    let mut pin = pin;
    pin.truncate(len);
    pin
}

/// The module loaded from `path`, initialised once for the whole process: a second
/// C_Initialize of the same library fails, and each CA key that lives in it needs it.
static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Pkcs11>>>> = OnceLock::new();

/// Finalises every module this process loaded (C_Finalize), for a clean exit: a module
/// left initialised (SoftHSMv2 seen) can corrupt its heap in its own exit handlers. Keys
/// opened before cannot sign afterwards.
fn finalize(modules: &mut HashMap<PathBuf, Arc<Pkcs11>>) {
    for (path, ctx) in modules.drain() {
        if let Err(e) = Pkcs11::clone(&ctx).finalize() {
            log::warn!("finalising the PKCS#11 module {}: {e}", path.display());
        }
    }
}

fn load_module(path: &Path) -> Result<Arc<Pkcs11>, PkiError> {
    // Two names of one file (a symlink) are one library in the process.
    let file = std::fs::canonicalize(path).map_err(|e| {
        bad(format!(
            "the PKCS#11 module {} cannot be found ({e}): check --pkcs11-module, \
             HOSTCA_PKCS11_MODULE or the URI's module-path",
            path.display()
        ))
    })?;
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(&file) {
        return Ok(Arc::clone(ctx));
    }
    let ctx = Pkcs11::new(&file).map_err(|e| {
        PkiError::failed(format!("loading the PKCS#11 module {}", path.display()), e)
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Another part of the process (a TLS engine, say) initialised it first; it serves
        // both.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(PkiError::failed(
                format!("initialising the PKCS#11 module {}", path.display()),
                e,
            ))
        }
    }
    if let Ok(info) = ctx.get_library_info() {
        log::info!(
            "PKCS#11 module {} loaded: {} ({})",
            path.display(),
            info.library_description(),
            info.manufacturer_id()
        );
    }
    let ctx = Arc::new(ctx);
    modules.insert(file, Arc::clone(&ctx));
    finalize_at_exit();
    Ok(ctx)
}

/// Makes `exit` finalise the modules before the libraries' own exit handlers run, in every
/// process that loads one (a command, a test binary) and not only in `serve`: SoftHSMv2
/// left initialised tears down its objects after OpenSSL's exit handler has freed what they
/// point to, and the process dies of SIGSEGV after its work is done. Handlers run last
/// registered first, so registering after C_Initialize puts this one ahead of those the
/// module registered while loading.
/// Whether the modules were finalised (the process is exiting): a session closed after
/// that is a call into a library whose objects are being torn down (SIGSEGV seen).
static FINALIZED: std::sync::RwLock<bool> = std::sync::RwLock::new(false);

impl Drop for Pkcs11Key {
    fn drop(&mut self) {
        let sessions = std::mem::take(
            self.sessions
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let finalized = FINALIZED.read().unwrap_or_else(PoisonError::into_inner);
        if *finalized {
            // C_Finalize closed them already.
            std::mem::forget(sessions);
        } else {
            drop(sessions);
        }
    }
}

fn finalize_at_exit() {
    extern "C" fn at_exit() {
        // Keys still being dropped on other threads (a server's workers wind down after
        // `main` returns) close their sessions first; later drops leave them to C_Finalize.
        let mut finalized = FINALIZED.write().unwrap_or_else(PoisonError::into_inner);
        *finalized = true;
        // A thread still loading a module holds the lock; waiting for it at exit could
        // hang the exit, and that module is not finished initialising anyway.
        if let Some(Ok(mut modules)) = MODULES.get().map(Mutex::try_lock) {
            finalize(&mut modules);
        }
    }
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    }
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` only stores the pointer to a function that lives as long as the
        // program; `at_exit` neither panics across the boundary (finalize only logs)
        // nor calls `exit`.
        if unsafe { atexit(at_exit) } != 0 {
            log::warn!("the PKCS#11 modules will not be finalised at exit (atexit failed)");
        }
    });
}

fn find_token(ctx: &Pkcs11, uri: &Pkcs11Uri, module: &Path) -> Result<(Slot, TokenInfo), PkiError> {
    let listing = |e| {
        PkiError::failed(
            format!(
                "listing the tokens of the PKCS#11 module {}",
                module.display()
            ),
            e,
        )
    };
    let mut labels = Vec::new();
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(listing)? {
        let info = ctx.get_token_info(slot).map_err(listing)?;
        if !info.token_initialized() {
            continue;
        }
        labels.push(format!("\"{}\"", info.label()));
        if uri.matches(&info) {
            found.push((slot, info));
        }
    }
    if found.len() == 1 {
        return Ok(found.remove(0));
    }
    if found.len() > 1 {
        return Err(bad(format!(
            "{} tokens of the PKCS#11 module {} match ({}): name one with token=LABEL, or \
             serial=SERIAL when labels repeat",
            found.len(),
            module.display(),
            uri.token_wanted()
        )));
    }
    if labels.is_empty() {
        return Err(bad(format!(
            "the PKCS#11 module {} has no initialised token: initialise one first (for \
             SoftHSMv2: softhsm2-util --init-token --free --label hostca)",
            module.display()
        )));
    }
    Err(bad(format!(
        "the PKCS#11 module {} has no {}; its tokens are labelled {}: correct the URI's token",
        module.display(),
        uri.token_wanted(),
        labels.join(", ")
    )))
}

/// Logs the session in; the login belongs to the application (all its sessions with the
/// token), so a second session finds it already done.
fn login(session: &Session, pin: &AuthPin, token: &str) -> Result<(), PkiError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(bad(format!(
            "the PIN for the PKCS#11 token \"{token}\" is wrong (CKR_PIN_INCORRECT): check \
             --pkcs11-pin-file, HOSTCA_PKCS11_PIN_FILE, HOSTCA_PKCS11_PIN or the URI's \
             pin-source before trying again, as tokens lock after a few wrong PINs"
        ))),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(bad(format!(
            "the user PIN of the PKCS#11 token \"{token}\" is locked (CKR_PIN_LOCKED): the \
             token's security officer must unlock or reset it"
        ))),
        Err(CkError::Pkcs11(RvError::PinExpired, _)) => Err(bad(format!(
            "the user PIN of the PKCS#11 token \"{token}\" has expired (CKR_PIN_EXPIRED): \
             set a new one with the token's tools"
        ))),
        Err(CkError::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _)) => Err(bad(format!(
            "the PIN given for the PKCS#11 token \"{token}\" cannot be a PIN of this token \
             (wrong length or characters): check the PIN file or HOSTCA_PKCS11_PIN"
        ))),
        Err(e) => Err(PkiError::failed(
            format!("logging in to the PKCS#11 token \"{token}\""),
            e,
        )),
    }
}

fn key_template(class: ObjectClass, label: Option<&str>, id: Option<&[u8]>) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = label {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    template
}

fn attribute(
    session: &Session,
    object: ObjectHandle,
    ty: AttributeType,
) -> cryptoki::error::Result<Option<Attribute>> {
    Ok(session.get_attributes(object, &[ty])?.into_iter().next())
}

fn bytes_of(attr: Option<Attribute>) -> Option<Vec<u8>> {
    match attr? {
        Attribute::Label(v)
        | Attribute::Id(v)
        | Attribute::EcParams(v)
        | Attribute::EcPoint(v)
        | Attribute::Modulus(v)
        | Attribute::PublicExponent(v)
        | Attribute::PublicKeyInfo(v) => Some(v),
        _ => None,
    }
}

/// The kinds of token key hostca signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyAlg {
    P256,
    P384,
    Rsa,
}

impl KeyAlg {
    fn name(self) -> &'static str {
        match self {
            KeyAlg::P256 => "ECDSA P-256",
            KeyAlg::P384 => "ECDSA P-384",
            KeyAlg::Rsa => "RSA",
        }
    }

    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlg::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// Bytes of one coordinate (and of r and s).
    fn field_len(self) -> usize {
        match self {
            KeyAlg::P256 => 32,
            KeyAlg::P384 => 48,
            KeyAlg::Rsa => 0,
        }
    }
}

/// A logged-in session and the private key's handle in it (handles are per session as far
/// as hostca can rely on).
struct Pooled {
    session: Session,
    key: ObjectHandle,
}

pub struct Pkcs11Key {
    ctx: Arc<Pkcs11>,
    slot: Slot,
    pin: AuthPin,
    module: PathBuf,
    token: String,
    /// The token's serial when the URI chose the token by it (labels can repeat).
    serial: Option<String>,
    /// The key's CKA_LABEL: the URI's object, or what the token says when the URI gave an id.
    object: Option<String>,
    /// The CKA_ID the URI chose the key by.
    id: Option<Vec<u8>>,
    alg: KeyAlg,
    public: Vec<u8>,
    sessions: Mutex<Vec<Pooled>>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("module", &self.module)
            .field("uri", &self.uri())
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Key {
    pub fn open(uri: &str, settings: &Pkcs11Settings) -> Result<Pkcs11Key, PkiError> {
        Self::open_parsed(&Pkcs11Uri::parse(uri)?, settings)
    }

    fn open_parsed(uri: &Pkcs11Uri, settings: &Pkcs11Settings) -> Result<Pkcs11Key, PkiError> {
        let ctx = load_module(&settings.module)?;
        let (slot, info) = find_token(&ctx, uri, &settings.module)?;
        let token = info.label().to_string();
        let pin = AuthPin::from(settings.pin.clone());
        let session = ctx.open_ro_session(slot).map_err(|e| {
            PkiError::failed(
                format!("opening a session with the PKCS#11 token \"{token}\""),
                e,
            )
        })?;
        login(&session, &pin, &token)?;
        let reading = |e| {
            PkiError::failed(
                format!("reading the key from the PKCS#11 token \"{token}\""),
                e,
            )
        };

        let wanted = describe_key(&token, uri.object.as_deref(), uri.id.as_deref());
        let template = key_template(
            ObjectClass::PRIVATE_KEY,
            uri.object.as_deref(),
            uri.id.as_deref(),
        );
        let key = match session.find_objects(&template).map_err(reading)?[..] {
            [key] => key,
            [] => {
                return Err(bad(format!(
                    "the PKCS#11 token \"{token}\" has no private key {}: check the URI's \
                     object or id (pkcs11-tool --module {} --login --list-objects lists the \
                     token's keys), or generate the key first",
                    key_phrase(uri.object.as_deref(), uri.id.as_deref()),
                    settings.module.display()
                )))
            }
            ref several => {
                return Err(bad(format!(
                    "{} private keys in the PKCS#11 token \"{token}\" are {}: add the key's \
                     id=%.. to the URI",
                    several.len(),
                    key_phrase(uri.object.as_deref(), uri.id.as_deref()),
                )))
            }
        };
        let object = match &uri.object {
            Some(object) => Some(object.clone()),
            None => bytes_of(attribute(&session, key, AttributeType::Label).map_err(reading)?)
                .and_then(|l| String::from_utf8(l).ok())
                .filter(|l| !l.is_empty()),
        };
        let (alg, public) = read_public_key(&session, key, object.as_deref(), &wanted)?;
        log::info!("PKCS#11 key {wanted} opened ({})", alg.name());
        Ok(Pkcs11Key {
            ctx,
            slot,
            pin,
            module: settings.module.clone(),
            token,
            serial: uri.serial.clone(),
            object,
            id: uri.id.clone(),
            alg,
            public,
            sessions: Mutex::new(vec![Pooled { session, key }]),
        })
    }

    pub fn generate(
        uri: &str,
        settings: &Pkcs11Settings,
        kind: CaKeyType,
    ) -> Result<Pkcs11Key, PkiError> {
        let mut uri = Pkcs11Uri::parse(uri)?;
        let Some(label) = uri.object.clone() else {
            return Err(bad(format!(
                "a key generated in a PKCS#11 token needs a name: put object=NAME in the URI, \
                 like {URI_EXAMPLE}"
            )));
        };
        let ctx = load_module(&settings.module)?;
        let (slot, info) = find_token(&ctx, &uri, &settings.module)?;
        let token = info.label().to_string();
        let pin = AuthPin::from(settings.pin.clone());
        let session = ctx.open_rw_session(slot).map_err(|e| {
            PkiError::failed(
                format!("opening a read-write session with the PKCS#11 token \"{token}\""),
                e,
            )
        })?;
        login(&session, &pin, &token)?;
        let searching = |e| {
            PkiError::failed(
                format!("searching the PKCS#11 token \"{token}\" for keys"),
                e,
            )
        };
        // One generation at a time in this process, so that two generations of the same
        // label cannot both pass the check below.
        static GENERATING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = GENERATING.lock().unwrap_or_else(|p| p.into_inner());
        let by_label = key_template(ObjectClass::PRIVATE_KEY, Some(&label), None);
        if !session
            .find_objects(&by_label)
            .map_err(searching)?
            .is_empty()
        {
            return Err(bad(format!(
                "the PKCS#11 token \"{token}\" already has a private key labelled \"{label}\": \
                 use that key (open it with this URI instead of generating one), or choose \
                 another object name"
            )));
        }
        if let Some(id) = &uri.id {
            let by_id = key_template(ObjectClass::PRIVATE_KEY, None, Some(id));
            if !session.find_objects(&by_id).map_err(searching)?.is_empty() {
                return Err(bad(format!(
                    "the PKCS#11 token \"{token}\" already has a private key with the id \
                     {}: leave id out of the URI (hostca picks a random one), or choose another",
                    percent_encode(id, true)
                )));
            }
        }
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 16];
                rand::fill(&mut id[..]);
                id
            }
        };

        let (mechanism, mut public_template) = match kind {
            CaKeyType::P256 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P256_PARAMS.to_vec())],
            ),
            CaKeyType::P384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P384_PARAMS.to_vec())],
            ),
            CaKeyType::Rsa3072 | CaKeyType::Rsa4096 => {
                let bits = kind
                    .rsa_bits()
                    .ok_or_else(|| PkiError::internal("an RSA key type without a size"))?;
                let bits =
                    Ulong::try_from(bits).map_err(|e| PkiError::failed("the RSA key size", e))?;
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![
                        Attribute::ModulusBits(bits),
                        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                    ],
                )
            }
        };
        public_template.extend([
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ]);
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        // SoftHSMv2 2.6 fails an EC generation with CKR_GENERAL_ERROR when the new private
        // value happens to start with a zero byte (about one key in 256): a fresh attempt
        // makes a fresh key.
        let mut attempt = 0;
        let generated = loop {
            attempt += 1;
            match session.generate_key_pair(&mechanism, &public_template, &private_template) {
                Err(CkError::Pkcs11(RvError::GeneralError, _)) if attempt < 4 => {
                    log::warn!(
                        "the PKCS#11 token \"{token}\" failed a key generation; trying again"
                    );
                }
                other => break other,
            }
        };
        let (public, private) = generated.map_err(|e| {
            PkiError::failed(
                format!(
                    "generating an {} key \"{label}\" in the PKCS#11 token \"{token}\"",
                    kind.label()
                ),
                e,
            )
        })?;
        log::info!(
            "generated an {} key in the PKCS#11 token \"{token}\", object \"{label}\", id {}",
            kind.label(),
            percent_encode(&id, true)
        );

        // The id pins the new key down even if another key gets the same label later.
        uri.id = Some(id);
        match Self::open_parsed(&uri, settings) {
            Ok(key) => Ok(key),
            Err(e) => {
                // A key pair hostca cannot use would only block the label for the next try.
                for object in [private, public] {
                    if let Err(d) = session.destroy_object(object) {
                        log::error!(
                            "removing the unusable new key \"{label}\" from the PKCS#11 token \
                             \"{token}\" failed: {d}"
                        );
                    }
                }
                Err(e)
            }
        }
    }

    pub fn uri(&self) -> String {
        let mut uri = format!(
            "pkcs11:token={}",
            percent_encode(self.token.as_bytes(), false)
        );
        if let Some(serial) = &self.serial {
            uri.push_str(";serial=");
            uri.push_str(&percent_encode(serial.as_bytes(), false));
        }
        if let Some(object) = &self.object {
            uri.push_str(";object=");
            uri.push_str(&percent_encode(object.as_bytes(), false));
        }
        if let Some(id) = &self.id {
            uri.push_str(";id=");
            uri.push_str(&percent_encode(id, true));
        }
        uri
    }

    pub fn describe(&self) -> String {
        describe_key(&self.token, self.object.as_deref(), self.id.as_deref())
    }

    /// Whether the token answers and this process is still logged in to it.
    pub fn check(&self) -> Result<(), PkiError> {
        self.with_session(|session, _| {
            match session.get_session_info()?.session_state() {
                SessionState::RoUser | SessionState::RwUser => Ok(()),
                // A logout through any session logs them all out; recover like a failed
                // signature would.
                _ => Err(CkError::Pkcs11(
                    RvError::UserNotLoggedIn,
                    Function::GetSessionInfo,
                )),
            }
        })
        .map_err(|e| {
            PkiError::failed(
                format!("the PKCS#11 token \"{}\" is unreachable", self.token),
                e,
            )
        })
    }

    /// Runs `op` on a pooled session; when the session turns out to be gone (the token
    /// removed or reset, the login lost), on a new one, once.
    fn with_session<T>(
        &self,
        op: impl Fn(&Session, ObjectHandle) -> cryptoki::error::Result<T>,
    ) -> Result<T, PkiError> {
        let pooled = match self.take() {
            Some(pooled) => pooled,
            None => self.connect()?,
        };
        let lost = match op(&pooled.session, pooled.key) {
            Ok(v) => {
                self.give_back(pooled);
                return Ok(v);
            }
            Err(e) if session_lost(&e) => e,
            Err(e) => {
                self.give_back(pooled);
                return Err(self.token_error(e));
            }
        };
        log::warn!(
            "{}: the PKCS#11 session failed ({}); opening a new one and trying again",
            self.describe(),
            rv_name(&lost)
        );
        discard(pooled, &lost);
        let fresh = self.connect()?;
        let result = op(&fresh.session, fresh.key);
        match &result {
            Err(e) if session_lost(e) => discard(fresh, e),
            _ => self.give_back(fresh),
        }
        result.map_err(|e| self.token_error(e))
    }

    fn take(&self) -> Option<Pooled> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, pooled: Pooled) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() < POOL_MAX {
            sessions.push(pooled);
        }
    }

    /// A new logged-in session, with the key found again: handles from a session that
    /// died may not name the key any more.
    fn connect(&self) -> Result<Pooled, PkiError> {
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| self.token_error(e))?;
        login(&session, &self.pin, &self.token)?;
        let template = key_template(
            ObjectClass::PRIVATE_KEY,
            self.object.as_deref(),
            self.id.as_deref(),
        );
        match session
            .find_objects(&template)
            .map_err(|e| self.token_error(e))?[..]
        {
            [key] => Ok(Pooled { session, key }),
            [] => Err(PkiError::internal(format!(
                "the private key {} is no longer in the token",
                self.describe()
            ))),
            _ => Err(PkiError::internal(format!(
                "more than one private key now matches {}: give the key's id in the URI",
                self.describe()
            ))),
        }
    }

    fn token_error(&self, e: CkError) -> PkiError {
        PkiError::failed(format!("PKCS#11 token \"{}\"", self.token), e)
    }

    fn sign_ecdsa(&self, digest: &[u8]) -> Result<Vec<u8>, PkiError> {
        let raw = self.with_session(|s, key| s.sign(&Mechanism::Ecdsa, key, digest))?;
        ecdsa_der(&raw, self.alg.field_len()).ok_or_else(|| {
            PkiError::internal(format!(
                "the token returned a {}-byte ECDSA signature where {} bytes (r||s) belong",
                raw.len(),
                2 * self.alg.field_len()
            ))
        })
    }
}

// Session is Send but not Sync; the pool's Mutex is what lets CA code share the key.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pkcs11Key>();
};

fn describe_key(token: &str, object: Option<&str>, id: Option<&[u8]>) -> String {
    match (object, id) {
        (Some(object), _) => format!("PKCS#11 token \"{token}\", object \"{object}\""),
        (None, Some(id)) => format!("PKCS#11 token \"{token}\", object id {}", hex::encode(id)),
        (None, None) => format!("PKCS#11 token \"{token}\""),
    }
}

fn key_phrase(object: Option<&str>, id: Option<&[u8]>) -> String {
    match (object, id) {
        (Some(object), Some(id)) => {
            format!("labelled \"{object}\" with the id {}", hex::encode(id))
        }
        (Some(object), None) => format!("labelled \"{object}\""),
        (None, Some(id)) => format!("with the id {}", hex::encode(id)),
        (None, None) => "at all".into(),
    }
}

/// The errors after which a session (or the handles in it) cannot be trusted, but a new
/// session may well work.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::DeviceError
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid,
            _
        )
    )
}

fn rv_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{rv:?} from {function}"),
        other => other.to_string(),
    }
}

fn discard(pooled: Pooled, why: &CkError) {
    let gone = matches!(
        why,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
            _
        )
    );
    if gone {
        // The token has closed it already; C_CloseSession on drop would only log an error.
        // What leaks is a reference to the module, which the process keeps loaded anyway.
        std::mem::forget(pooled.session);
    }
    // Otherwise it is closed here, as it goes out of scope.
}

/// The key's algorithm and its subjectPublicKey bits: from the public-key object with the
/// private key's id (and label), else from what the private key itself shows.
fn read_public_key(
    session: &Session,
    private: ObjectHandle,
    label: Option<&str>,
    wanted: &str,
) -> Result<(KeyAlg, Vec<u8>), PkiError> {
    let reading = |e| PkiError::failed(format!("reading the public key of {wanted}"), e);
    let key_type = match attribute(session, private, AttributeType::KeyType).map_err(reading)? {
        Some(Attribute::KeyType(t)) => t,
        _ => {
            return Err(PkiError::internal(format!(
                "the token does not say what type of key {wanted} is"
            )))
        }
    };
    let id = bytes_of(attribute(session, private, AttributeType::Id).map_err(reading)?)
        .filter(|id| !id.is_empty());
    // CKA_ID is what pairs a private key with its public key (tools label them apart at
    // times); the label decides only when the id does not.
    let find_public = |label: Option<&str>| {
        let mut template = key_template(ObjectClass::PUBLIC_KEY, label, id.as_deref());
        template.push(Attribute::KeyType(key_type));
        session.find_objects(&template).map_err(reading)
    };
    let mut publics = match (&id, label) {
        (None, None) => Vec::new(),
        (None, Some(label)) => find_public(Some(label))?,
        (Some(_), _) => find_public(None)?,
    };
    if publics.len() > 1 && id.is_some() && label.is_some() {
        publics = find_public(label)?;
    }
    let public = match publics[..] {
        [public] => Some(public),
        [] => None,
        ref several => {
            return Err(bad(format!(
                "{} public keys in the token match {wanted}: give the private key and its \
                 public key an id of their own, and put it in the URI",
                several.len()
            )))
        }
    };
    let no_public = || {
        bad(format!(
            "the token has no public key object for {wanted}, and hostca needs the public key \
             for certificates: import it with the same label and id as the private key"
        ))
    };
    if key_type == KeyType::EC {
        let params =
            bytes_of(attribute(session, private, AttributeType::EcParams).map_err(reading)?);
        let alg = match params.as_deref() {
            Some(P256_PARAMS) => KeyAlg::P256,
            Some(P384_PARAMS) => KeyAlg::P384,
            Some(other) => {
                return Err(bad(format!(
                    "{wanted} is an EC key on a curve hostca does not sign with (CKA_EC_PARAMS \
                     {}): use a P-256 or P-384 key",
                    hex::encode(other)
                )))
            }
            None => {
                return Err(PkiError::internal(format!(
                    "the token does not give the curve (CKA_EC_PARAMS) of {wanted}"
                )))
            }
        };
        let point = match public {
            Some(public) => {
                bytes_of(attribute(session, public, AttributeType::EcPoint).map_err(reading)?)
                    .and_then(|p| ec_point(&p, alg.field_len()))
            }
            // PKCS#11 3.0 tokens may show the SubjectPublicKeyInfo on the private key.
            None => bytes_of(
                attribute(session, private, AttributeType::PublicKeyInfo).map_err(reading)?,
            )
            .and_then(|spki| spki_bits(&spki))
            .and_then(|p| ec_point(&p, alg.field_len())),
        };
        let point = point.ok_or_else(|| match public {
            Some(_) => PkiError::internal(format!(
                "the public key of {wanted} is not an uncompressed point on its curve"
            )),
            None => no_public(),
        })?;
        return Ok((alg, point));
    }
    if key_type == KeyType::RSA {
        // An RSA private key carries its modulus and public exponent too: fine if the
        // public key object is missing.
        let from = public.unwrap_or(private);
        let modulus = bytes_of(attribute(session, from, AttributeType::Modulus).map_err(reading)?);
        let exponent =
            bytes_of(attribute(session, from, AttributeType::PublicExponent).map_err(reading)?);
        let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
            return Err(no_public());
        };
        let bits = unsigned_bits(&modulus);
        if !RSA_BITS.contains(&bits) {
            return Err(bad(format!(
                "{wanted} is an RSA-{bits} key: hostca signs with RSA keys of 2048 to 4096 bits"
            )));
        }
        let mut body = der_integer(&modulus);
        body.extend(der_integer(&exponent));
        return Ok((KeyAlg::Rsa, der_tlv(0x30, &body)));
    }
    Err(bad(format!(
        "{wanted} is neither an EC nor an RSA key: hostca signs with ECDSA P-256, P-384 or RSA"
    )))
}

/// CKA_EC_POINT is specified as a DER OCTET STRING around the point, but some tokens give
/// the bare point: accept either, by length.
fn ec_point(attr: &[u8], field_len: usize) -> Option<Vec<u8>> {
    let want = 1 + 2 * field_len;
    let point = if attr.len() == want {
        attr
    } else {
        der_octet_string(attr)?
    };
    (point.len() == want && point[0] == 0x04).then(|| point.to_vec())
}

fn spki_bits(spki: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    Some(spki.subject_public_key.data.to_vec())
}

fn unsigned_bits(n: &[u8]) -> usize {
    let skip = n.iter().take_while(|b| **b == 0).count();
    match n.get(skip) {
        Some(first) => (n.len() - skip) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// The token's raw `r||s` as `SEQUENCE { INTEGER r, INTEGER s }`.
fn ecdsa_der(raw: &[u8], field_len: usize) -> Option<Vec<u8>> {
    if field_len == 0 || raw.len() != 2 * field_len {
        return None;
    }
    let (r, s) = raw.split_at(field_len);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    Some(der_tlv(0x30, &body))
}

/// A DER INTEGER of an unsigned big-endian number: no leading zero bytes, except one when
/// the high bit is set (it would read as negative) or the number is zero.
fn der_integer(unsigned: &[u8]) -> Vec<u8> {
    let start = unsigned
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(unsigned.len());
    let digits = &unsigned[start..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    der_tlv(0x02, &content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The content of a DER OCTET STRING that is all of `der`.
fn der_octet_string(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x04 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let (len, rest) = rest.split_at(n);
        (
            len.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b)),
            rest,
        )
    };
    (rest.len() == len).then_some(rest)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl PublicKeyData for Pkcs11Key {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg.signature_algorithm()
    }
}

impl SigningKey for Pkcs11Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature = match self.alg {
            KeyAlg::P256 => self.sign_ecdsa(&Sha256::digest(msg)),
            KeyAlg::P384 => self.sign_ecdsa(&Sha384::digest(msg)),
            KeyAlg::Rsa => self.with_session(|s, key| s.sign(&Mechanism::Sha256RsaPkcs, key, msg)),
        };
        signature.map_err(|e| {
            log::error!(
                "signing with {} failed: {}",
                self.describe(),
                error_chain(&e)
            );
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn parse(uri: &str) -> Pkcs11Uri {
        Pkcs11Uri::parse(uri).unwrap()
    }

    fn refusal(uri: &str) -> String {
        match Pkcs11Uri::parse(uri) {
            Err(PkiError::BadInput(m)) => m,
            other => panic!("{uri}: expected a BadInput refusal, got {other:?}"),
        }
    }

    #[test]
    fn uri_token_and_object() {
        let u = parse("pkcs11:token=hostca;object=issuing");
        assert_eq!(u.token.as_deref(), Some("hostca"));
        assert_eq!(u.object.as_deref(), Some("issuing"));
        assert_eq!(u.id, None);
        // The scheme is case-insensitive, and surrounding blanks are a paste accident.
        assert_eq!(parse("  PKCS11:token=hostca;object=issuing\n"), u);
    }

    #[test]
    fn uri_every_attribute_and_percent_decoding() {
        let u = parse(
            "pkcs11:token=My%20CA%3B1;object=root%2Fkey;id=%01%02%aB;serial=0123abc;\
             manufacturer=SoftHSM%20project;model=SoftHSM%20v2;type=private\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/hostca/pin",
        );
        assert_eq!(u.token.as_deref(), Some("My CA;1"));
        assert_eq!(u.object.as_deref(), Some("root/key"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0x02, 0xab][..]));
        assert_eq!(u.serial.as_deref(), Some("0123abc"));
        assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(
            u.module_path.as_deref(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_source.as_deref(), Some(Path::new("/etc/hostca/pin")));
    }

    #[test]
    fn uri_id_alone_names_a_key() {
        let u = parse("pkcs11:id=%00%ff");
        assert_eq!(u.id.as_deref(), Some(&[0x00, 0xff][..]));
        assert_eq!(u.token, None);
    }

    #[test]
    fn uri_pin_source_forms() {
        assert_eq!(
            parse("pkcs11:object=a?pin-source=file:///run/pin").pin_source,
            Some(PathBuf::from("/run/pin"))
        );
        assert_eq!(
            parse("pkcs11:object=a?pin-source=file:/run/my%20pin").pin_source,
            Some(PathBuf::from("/run/my pin"))
        );
        assert!(refusal("pkcs11:object=a?pin-source=%7C/usr/bin/get-pin").contains("file:/path"));
        assert!(refusal("pkcs11:object=a?pin-source=file:pin.txt").contains("absolute"));
    }

    #[test]
    fn uri_pin_value_is_refused_without_echoing_it() {
        for uri in [
            "pkcs11:token=hostca;object=issuing?pin-value=s3cret",
            "pkcs11:token=hostca;object=issuing;pin-value=s3cret",
            "pkcs11:token=hostca;object=issuing?module-path=/x.so&pin-value=s3cret",
        ] {
            let m = refusal(uri);
            assert!(m.contains("pin-value"), "{m}");
            assert!(m.contains("--pkcs11-pin-file"), "{m}");
            assert!(m.contains("HOSTCA_PKCS11_PIN_FILE"), "{m}");
            assert!(m.contains("HOSTCA_PKCS11_PIN"), "{m}");
            assert!(!m.contains("s3cret"), "{m}");
        }
    }

    #[test]
    fn uri_refusals_say_what_and_how() {
        let m = refusal("pkcs11:token=hostca;object=issuing;slot-id=3");
        assert!(m.contains("slot-id") && m.contains("not supported"), "{m}");
        let m = refusal("pkcs11:token=hostca;object=issuing?x-vendor=1");
        assert!(m.contains("x-vendor"), "{m}");
        let m = refusal("pkcs11:token=hostca");
        assert!(m.contains("object=") && m.contains("id="), "{m}");
        let m = refusal("pkcs11:");
        assert!(m.contains("names no key"), "{m}");
        let m = refusal("token=hostca;object=issuing");
        assert!(m.contains("starts with pkcs11:"), "{m}");
        let m = refusal("pkcs11:token=hostca;object=issuing;type=cert");
        assert!(m.contains("type must be private"), "{m}");
        let m = refusal("pkcs11:token=a;token=b;object=c");
        assert!(m.contains("token twice"), "{m}");
        let m = refusal("pkcs11:token=hostca;object=is%zzuing");
        assert!(m.contains("%25"), "{m}");
        let m = refusal("pkcs11:token=hostca;object=issuing%4");
        assert!(m.contains("two hex digits"), "{m}");
        let m = refusal("pkcs11:token=hostca;object=");
        assert!(m.contains("object is empty"), "{m}");
        let m = refusal("pkcs11:token=hostca;issuing");
        assert!(m.contains("without '='"), "{m}");
        let m = refusal("pkcs11:token=%ff;object=a");
        assert!(m.contains("UTF-8"), "{m}");
        let m = refusal("pkcs11:token=hostca;object=a;module-path=/x.so");
        assert!(m.contains("after '?'"), "{m}");
        let m = refusal("pkcs11:object=a?module-name=softhsm2");
        assert!(m.contains("--pkcs11-module"), "{m}");
        assert!(refusal("pkcs11:object=a?pin-source=").contains("empty"));
    }

    #[test]
    fn percent_encoding_reads_back() {
        let label = "CA; root/1 ?%=é";
        let encoded = percent_encode(label.as_bytes(), false);
        assert!(!encoded.contains([';', '?', '/', ' ', '=']), "{encoded}");
        let u = parse(&format!("pkcs11:token={encoded};object=x"));
        assert_eq!(u.token.as_deref(), Some(label));
        assert_eq!(percent_encode(b"ab", true), "%61%62");
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn pin_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn settings_order_of_sources() {
        let dir = tempfile::tempdir().unwrap();
        let flag_pin = pin_file(&dir, "flag", "1111\n");
        let env_pin = pin_file(&dir, "env", "2222\r\n");
        let uri_pin = pin_file(&dir, "uri", "4444");
        let uri = format!(
            "pkcs11:token=t;object=o?module-path=/uri.so&pin-source=file:{}",
            uri_pin.display()
        );
        let full_env = |name: &str| -> Option<OsString> {
            match name {
                "HOSTCA_PKCS11_MODULE" => Some("/env.so".into()),
                "HOSTCA_PKCS11_PIN_FILE" => Some(env_pin.clone().into()),
                "HOSTCA_PKCS11_PIN" => Some("3333".into()),
                _ => None,
            }
        };

        let s = resolve_with(
            &uri,
            Some(Path::new("/flag.so")),
            Some(&flag_pin),
            &full_env,
        )
        .unwrap();
        assert_eq!(
            (s.module.as_path(), s.pin.as_str()),
            (Path::new("/flag.so"), "1111")
        );

        let s = resolve_with(&uri, None, None, &full_env).unwrap();
        assert_eq!(
            (s.module.as_path(), s.pin.as_str()),
            (Path::new("/env.so"), "2222")
        );

        let pin_only = |name: &str| (name == "HOSTCA_PKCS11_PIN").then(|| OsString::from("3333"));
        let s = resolve_with(&uri, None, None, &pin_only).unwrap();
        assert_eq!(
            (s.module.as_path(), s.pin.as_str()),
            (Path::new("/uri.so"), "3333")
        );

        // Set but empty counts as not set.
        let empty = |_: &str| Some(OsString::new());
        let s = resolve_with(&uri, None, None, &empty).unwrap();
        assert_eq!(
            (s.module.as_path(), s.pin.as_str()),
            (Path::new("/uri.so"), "4444")
        );

        // The PIN never shows in Debug output.
        assert!(!format!("{s:?}").contains("4444"));
    }

    #[test]
    fn settings_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let pin = pin_file(&dir, "pin", "1234\n");
        let module = Some(Path::new("/m.so"));
        let refused = |uri: &str, module: Option<&Path>, pin: Option<&Path>| {
            bad_input(resolve_with(uri, module, pin, &no_env))
        };

        let m = refused("pkcs11:object=o", None, Some(&pin));
        assert!(
            m.contains("--pkcs11-module") && m.contains("HOSTCA_PKCS11_MODULE"),
            "{m}"
        );

        let m = refused("pkcs11:object=o", module, None);
        assert!(
            m.contains("no PIN") && m.contains("HOSTCA_PKCS11_PIN"),
            "{m}"
        );

        let m = refused("pkcs11:object=o", module, Some(&dir.path().join("missing")));
        assert!(m.contains("cannot read the PKCS#11 PIN file"), "{m}");
        assert!(m.contains("--pkcs11-pin-file"), "{m}");

        let m = refused(
            "pkcs11:object=o",
            module,
            Some(&pin_file(&dir, "blank", "\n")),
        );
        assert!(m.contains("empty"), "{m}");

        let m = refused("pkcs11:object=o?pin-value=1234", module, Some(&pin));
        assert!(m.contains("never the command line"), "{m}");
    }

    #[test]
    fn der_helpers() {
        assert_eq!(der_integer(&[0, 0, 0x7f]), vec![0x02, 0x01, 0x7f]);
        assert_eq!(der_integer(&[0, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_integer(&[0, 0]), vec![0x02, 0x01, 0x00]);
        let mut raw = vec![0u8; 64];
        raw[31] = 1;
        raw[32] = 0xff;
        let der = ecdsa_der(&raw, 32).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..9], &[0x02, 0x21, 0x00, 0xff]);
        assert_eq!(ecdsa_der(&raw[..63], 32), None);
        assert_eq!(der_tlv(0x04, &[7; 200])[..3], [0x04, 0x81, 200]);

        let point = [[0x04].as_slice(), &[9; 64]].concat();
        let wrapped = der_tlv(0x04, &point);
        assert_eq!(ec_point(&wrapped, 32), Some(point.clone()));
        assert_eq!(ec_point(&point, 32), Some(point.clone()));
        assert_eq!(ec_point(&wrapped, 48), None);
        let p384 = [[0x04].as_slice(), &[9; 96]].concat();
        assert_eq!(ec_point(&der_tlv(0x04, &p384), 48), Some(p384));
        assert_eq!(unsigned_bits(&[0, 0x01, 0]), 9);
    }

    // SoftHSMv2 from here on. The module reads SOFTHSM2_CONF once, when the process first
    // initialises it, so every test shares one token directory set up before that; each
    // test uses its own object labels. Three tokens: the one most tests use, one for the
    // wrong PIN (a process that is logged in would answer "already logged in" before
    // looking at the PIN) and one whose login the recovery test throws away.

    const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
    const TOKEN: &str = "hostca-test";
    const PIN_TOKEN: &str = "hostca-pin";
    const LOST_TOKEN: &str = "hostca-lost";
    const PIN: &str = "1234";

    fn softhsm() -> Option<Pkcs11Settings> {
        if !Path::new(SOFTHSM).exists() {
            eprintln!("skipped: {SOFTHSM} is not installed (apt-get install softhsm2)");
            return None;
        }
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        DIR.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("hostca-softhsm-")
                .tempdir()
                .unwrap();
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/softhsm-token.sh");
            let mut conf = String::new();
            for label in [TOKEN, PIN_TOKEN, LOST_TOKEN] {
                let out = Command::new("sh")
                    .arg(script)
                    .arg(dir.path())
                    .args([label, PIN, "5678"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{script}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                conf = String::from_utf8(out.stdout).unwrap();
            }
            let conf = conf
                .trim()
                .strip_prefix("export SOFTHSM2_CONF='")
                .and_then(|c| c.strip_suffix('\''))
                .unwrap_or_else(|| panic!("softhsm-token.sh printed {conf}"))
                .to_string();
            assert_eq!(Path::new(&conf), dir.path().join("softhsm2.conf"));
            std::env::set_var("SOFTHSM2_CONF", conf);
            dir
        });
        Some(Pkcs11Settings {
            module: SOFTHSM.into(),
            pin: PIN.into(),
        })
    }

    fn bad_input<T: std::fmt::Debug>(r: Result<T, PkiError>) -> String {
        match r {
            Err(PkiError::BadInput(m)) => m,
            other => panic!("expected a BadInput refusal, got {other:?}"),
        }
    }

    fn verify(key: &Pkcs11Key, msg: &[u8], signature: &[u8]) {
        let alg: &dyn ring::signature::VerificationAlgorithm = match key.alg {
            KeyAlg::P256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            KeyAlg::P384 => &ring::signature::ECDSA_P384_SHA384_ASN1,
            KeyAlg::Rsa => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        };
        ring::signature::UnparsedPublicKey::new(alg, key.der_bytes())
            .verify(msg, signature)
            .unwrap_or_else(|_| panic!("the signature of {} does not verify", key.describe()));
    }

    fn openssl(args: &[&str]) -> String {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn generate_sign_and_certify(kind: CaKeyType, object: &str, expect: &[&str]) {
        let Some(settings) = softhsm() else { return };
        let uri = format!("pkcs11:token={TOKEN};object={object}");
        let key = Pkcs11Key::generate(&uri, &settings, kind).unwrap();
        assert_eq!(key.algorithm(), kind.algorithm());
        assert!(
            key.uri().starts_with(&format!("{uri};id=%")),
            "{}",
            key.uri()
        );
        assert_eq!(key.uri().len(), uri.len() + ";id=".len() + 16 * 3);
        assert_eq!(
            key.describe(),
            format!("PKCS#11 token \"{TOKEN}\", object \"{object}\"")
        );
        key.check().unwrap();

        let msg = b"hostca signs this";
        for _ in 0..3 {
            verify(&key, msg, &key.sign(msg).unwrap());
        }

        // The key can never leave the token.
        let attrs = key
            .with_session(|s, k| {
                s.get_attributes(
                    k,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Token,
                        AttributeType::Private,
                        AttributeType::Sign,
                    ],
                )
            })
            .unwrap();
        for attr in &attrs {
            match attr {
                Attribute::Sensitive(v) | Attribute::Token(v) | Attribute::Private(v) => {
                    assert!(*v, "{attr:?}")
                }
                Attribute::Sign(v) => assert!(*v),
                Attribute::Extractable(v) => assert!(!*v, "CKA_EXTRACTABLE is true"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(attrs.len(), 5);

        // A self-signed CA certificate that openssl reads and accepts.
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("hostca test {object}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, cert.pem()).unwrap();
        let pem = pem.to_str().unwrap();
        let text = openssl(&["x509", "-noout", "-text", "-in", pem]);
        for want in expect {
            assert!(
                text.contains(want),
                "openssl x509 says:\n{text}\nwithout {want}"
            );
        }
        let verified = openssl(&["verify", "-CAfile", pem, pem]);
        assert!(verified.trim_end().ends_with(": OK"), "{verified}");

        // The canonical URI opens the same key, as does the id alone.
        let reopened = Pkcs11Key::open(&key.uri(), &settings).unwrap();
        assert_eq!(reopened.der_bytes(), key.der_bytes());
        assert_eq!(reopened.uri(), key.uri());
        verify(&reopened, msg, &reopened.sign(msg).unwrap());
        let id_part = &key.uri()[key.uri().find(";id=").unwrap()..];
        let by_id = Pkcs11Key::open(&format!("pkcs11:token={TOKEN}{id_part}"), &settings).unwrap();
        assert_eq!(by_id.der_bytes(), key.der_bytes());
        assert_eq!(by_id.uri(), key.uri());
        let by_label = Pkcs11Key::open(&uri, &settings).unwrap();
        assert_eq!(by_label.der_bytes(), key.der_bytes());
        assert_eq!(by_label.uri(), uri);

        // The label is taken now.
        let m = bad_input(Pkcs11Key::generate(&uri, &settings, kind));
        assert!(
            m.contains("already has a private key labelled") && m.contains("another object name"),
            "{m}"
        );
    }

    #[test]
    fn softhsm_p256() {
        generate_sign_and_certify(
            CaKeyType::P256,
            "p256",
            &["ecdsa-with-SHA256", "prime256v1", "CA:TRUE"],
        );
    }

    #[test]
    fn softhsm_p384() {
        generate_sign_and_certify(
            CaKeyType::P384,
            "p384",
            &["ecdsa-with-SHA384", "secp384r1", "CA:TRUE"],
        );
    }

    #[test]
    fn softhsm_rsa3072() {
        generate_sign_and_certify(
            CaKeyType::Rsa3072,
            "rsa3072",
            &["sha256WithRSAEncryption", "(3072 bit)", "CA:TRUE"],
        );
    }

    #[test]
    fn softhsm_concurrent_signers_share_the_pool() {
        let Some(settings) = softhsm() else { return };
        let key = Pkcs11Key::generate(
            &format!("pkcs11:token={TOKEN};object=concurrent"),
            &settings,
            CaKeyType::P256,
        )
        .unwrap();
        std::thread::scope(|scope| {
            for t in 0..12 {
                let key = &key;
                scope.spawn(move || {
                    for i in 0..10 {
                        let msg = format!("thread {t} message {i}");
                        verify(key, msg.as_bytes(), &key.sign(msg.as_bytes()).unwrap());
                    }
                });
            }
        });
        let pooled = key.sessions.lock().unwrap().len();
        assert!((1..=POOL_MAX).contains(&pooled), "{pooled} sessions pooled");
    }

    #[test]
    fn softhsm_lost_login_is_recovered() {
        let _ = env_logger::builder().is_test(true).try_init();
        let Some(settings) = softhsm() else { return };
        let key = Pkcs11Key::generate(
            &format!("pkcs11:token={LOST_TOKEN};object=lost"),
            &settings,
            CaKeyType::P256,
        )
        .unwrap();
        let msg = b"before and after";
        verify(&key, msg, &key.sign(msg).unwrap());

        // Logging out through one session logs out all of them: the pooled session now
        // fails, and the key must log in on a new one.
        key.with_session(|s, _| s.logout()).unwrap();
        verify(&key, msg, &key.sign(msg).unwrap());

        key.with_session(|s, _| s.logout()).unwrap();
        key.check().unwrap();
        verify(&key, msg, &key.sign(msg).unwrap());
    }

    #[test]
    fn softhsm_wrong_pin_is_clear() {
        let Some(settings) = softhsm() else { return };
        let wrong = Pkcs11Settings {
            pin: "9999".into(),
            ..settings
        };
        let uri = format!("pkcs11:token={PIN_TOKEN};object=any");
        let m = bad_input(Pkcs11Key::generate(&uri, &wrong, CaKeyType::P256));
        assert!(
            m.contains("PIN") && m.contains("wrong") && m.contains(PIN_TOKEN),
            "{m}"
        );
        assert!(!m.contains("9999"), "{m}");
        let m = bad_input(Pkcs11Key::open(&uri, &wrong));
        assert!(m.contains("wrong"), "{m}");
    }

    #[test]
    fn softhsm_refusals() {
        let Some(settings) = softhsm() else { return };
        let m = bad_input(Pkcs11Key::open(
            &format!("pkcs11:token={TOKEN};object=nothing-here"),
            &settings,
        ));
        assert!(
            m.contains("no private key") && m.contains("nothing-here"),
            "{m}"
        );

        let m = bad_input(Pkcs11Key::open(
            "pkcs11:token=no-such-token;object=x",
            &settings,
        ));
        assert!(
            m.contains("no-such-token") && m.contains(&format!("\"{TOKEN}\"")),
            "{m}"
        );

        // Several tokens and none named: the operator must say which.
        let m = bad_input(Pkcs11Key::open("pkcs11:object=x", &settings));
        assert!(m.contains("token=LABEL"), "{m}");

        let m = bad_input(Pkcs11Key::generate(
            &format!("pkcs11:token={TOKEN};id=%01"),
            &settings,
            CaKeyType::P256,
        ));
        assert!(m.contains("object=NAME"), "{m}");

        let m = bad_input(Pkcs11Key::open(
            &format!("pkcs11:token={TOKEN};object=x?pin-value={PIN}"),
            &settings,
        ));
        assert!(m.contains("pin-value") && !m.contains(PIN), "{m}");
        let m = bad_input(Pkcs11Settings::resolve(
            &format!("pkcs11:token={TOKEN};object=x?pin-value={PIN}"),
            Some(Path::new(SOFTHSM)),
            None,
        ));
        assert!(m.contains("--pkcs11-pin-file"), "{m}");

        let m = bad_input(Pkcs11Key::open(
            &format!("pkcs11:token={TOKEN};object=x"),
            &Pkcs11Settings {
                module: "/nonexistent/libpkcs11.so".into(),
                ..settings
            },
        ));
        assert!(
            m.contains("/nonexistent/libpkcs11.so") && m.contains("--pkcs11-module"),
            "{m}"
        );
    }
}

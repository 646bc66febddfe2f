//! The domain's closed sets of values (roles, states, kinds, categories, sort keys), each
//! defined once by `kinds!`: the variant, the text stored in the database column (and sent
//! in JSON and forms) and the label people read.
//!
//! The stored text is the one the columns held before these types existed, so existing
//! rows read back without a migration. A row whose column holds any other text (edited by
//! hand, or written by a newer version) fails to load with a deserialization error that
//! names the column's type and the value; it never turns into a default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

/// How much of an unknown stored value an error message repeats: the row may have been
/// written by someone who wants a very long error page.
const SHOWN_CHARS: usize = 64;

/// The error of a stored or submitted text that is none of the keys.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct UnknownKey {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

impl UnknownKey {
    pub fn new(what: &'static str, value: &str, keys: &[&str]) -> UnknownKey {
        let mut shown: String = value.chars().take(SHOWN_CHARS).collect();
        if value.chars().count() > SHOWN_CHARS {
            shown.push('…');
        }
        UnknownKey {
            what,
            value: shown,
            expected: keys.join(", "),
        }
    }
}

/// `a`, `a or b`, `a, b or c`: a list of choices as a message names them.
pub fn or_list(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Defines a closed set of values: the enum, `ALL`, `KEYS`, `key()`, `label()`, `parse()`,
/// `Display` (the key), serde as the key, and diesel `ToSql`/`FromSql` for `Text` on every
/// backend whose `str`/`String` do (SQLite, PostgreSQL and the `DbConn` multi-backend).
///
/// `parse = exact` accepts the key as written; `parse = ignore_case` in any ASCII case (what
/// the forms and the API accepted for that value before). Stored values are always read
/// with `parse`, and always written as the key.
macro_rules! kinds {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal, parse = $mode:ident) {
            $( $(#[$vmeta:meta])* $variant:ident = $key:literal, $label:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order lists and selects show them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every key, in the order of `ALL`.
            pub const KEYS: &'static [&'static str] = &[$($key),+];
            /// What this set of values is called in messages.
            pub const WHAT: &'static str = $what;

            /// The text stored in the database, sent in JSON and submitted by forms.
            pub fn key(self) -> &'static str {
                match self {
                    $( $name::$variant => $key, )+
                }
            }

            /// What people read.
            pub fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| kinds!(@eq $mode, v.key(), s))
            }

            /// `parse`, with an error that names the value and the keys.
/// The keys as a person reads a list of choices: `a, b or c`.
            pub fn choices() -> String {
                $crate::models::kinds::or_list($name::KEYS)
            }

            pub fn parse_or_err(s: &str) -> Result<$name, $crate::models::kinds::UnknownKey> {
                $name::parse(s).ok_or_else(|| {
                    $crate::models::kinds::UnknownKey::new($what, s, $name::KEYS)
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.key())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::models::kinds::UnknownKey;
            fn from_str(s: &str) -> Result<$name, Self::Err> {
                $name::parse_or_err(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.key())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $name::parse(&s)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&s, $name::KEYS))
            }
        }

        /// In the OpenAPI document: a string, one of the keys.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::KEYS.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<DB: Backend> ToSql<Text, DB> for $name
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <str as ToSql<Text, DB>>::to_sql(self.key(), out)
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<$name> {
                let s = <String as FromSql<Text, DB>>::from_sql(bytes)?;
                Ok($name::parse_or_err(&s)?)
            }
        }
    };
    (@eq exact, $key:expr, $s:expr) => { $key == $s };
    (@eq ignore_case, $key:expr, $s:expr) => { $key.eq_ignore_ascii_case($s) };
}

kinds! {
    /// What a console user or API key may do.
    pub enum Role ("role", parse = exact) {
        Administrator = "administrator", "Administrator";
        SecurityAdmin = "security_admin", "Security administrator";
        Viewer = "viewer", "Viewer";
    }
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::SecurityAdmin => 1,
            Role::Administrator => 2,
        }
    }

    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }

    /// Whether this role may change security objects (tokens, certificates, hosts).
    pub fn can_change(self) -> bool {
        self.at_least(Role::SecurityAdmin)
    }
}

kinds! {
    /// What a token lets a host do.
    pub enum TokenKind ("token kind", parse = exact) {
        /// Enrol: a first certificate for the names the token allows.
        Authorization = "authorization", "Authorization";
        /// Replace the certificate of the one host the token names.
        Reissue = "reissue", "Reissue";
    }
}

kinds! {
    /// A token's state, computed from its uses and validity (not stored).
    pub enum TokenState ("token state", parse = exact) {
        Active = "active", "Active";
        Expired = "expired", "Expired";
        UsedUp = "used_up", "Used up";
    }
}

kinds! {
    /// The token list's sort columns.
    pub enum TokenSort ("token sort column", parse = exact) {
        Name = "name", "Name";
        Kind = "kind", "Kind";
        Uses = "uses", "Uses";
        ValidUntil = "valid_until", "Valid until";
        CreatedBy = "created_by", "Created by";
        CreatedAt = "created_at", "Created";
    }
}

kinds! {
    /// An API key's state, computed from its revocation and expiry (not stored).
    pub enum ApiKeyState ("API key state", parse = exact) {
        Active = "active", "Active";
        Expired = "expired", "Expired";
        Revoked = "revoked", "Revoked";
    }
}

kinds! {
    /// A certificate's status, computed from its revocation and validity (not stored).
    pub enum CertStatus ("certificate status", parse = exact) {
        Active = "active", "Active";
        Revoked = "revoked", "Revoked";
        Expired = "expired", "Expired";
        Superseded = "superseded", "Superseded";
    }
}

kinds! {
    /// The certificate list's views of what needs attention (the overview page's links).
    pub enum CertAttention ("certificate view", parse = exact) {
        RenewalMissed = "renewal-missed", "Renewal window missed";
        Lapsed = "lapsed", "Expired, not renewed";
        RecentlyRevoked = "recently-revoked", "Revoked in the last 7 days";
    }
}

kinds! {
    /// The certificate list's sort columns.
    pub enum CertSort ("certificate sort column", parse = exact) {
        Host = "host", "Host";
        Serial = "serial", "Serial";
        Issued = "issued", "Issued";
        Expires = "expires", "Expires";
    }
}

kinds! {
    /// The host list's sort columns.
    pub enum HostSort ("host sort column", parse = exact) {
        Name = "name", "Name";
        Created = "created", "Created";
    }
}

kinds! {
    /// Whether a name mapped to a host may be in its certificates.
    pub enum MappingState ("mapping state", parse = exact) {
        Approved = "approved", "Approved";
        Pending = "pending", "Pending";
        Rejected = "rejected", "Rejected";
    }
}

kinds! {
    /// Who added a mapping: a host's request, or an administrator.
    pub enum MappingSource ("mapping source", parse = exact) {
        Auto = "auto", "Automatic";
        Manual = "manual", "Manual";
    }
}

kinds! {
    /// How much a certificate request must prove (see `SecurityLevel::description`).
    pub enum SecurityLevel ("security level", parse = exact) {
        VeryHigh = "very_high", "Very high";
        High = "high", "High";
        Medium = "medium", "Medium";
    }
}

impl SecurityLevel {
    pub fn description(self) -> &'static str {
        match self {
            SecurityLevel::VeryHigh => "Every certificate request needs a token.",
            SecurityLevel::High => "A known host (added by an administrator, or an approved mapping) needs no token; others do.",
            SecurityLevel::Medium => "No token is needed when the requested name resolves to the address the request came from.",
        }
    }
}

kinds! {
    /// What an audit event is about. The audit filter accepted these in any case.
    pub enum AuditCategory ("audit category", parse = ignore_case) {
        Token = "TOKEN", "Token";
        Cert = "CERT", "Certificate";
        Host = "HOST", "Host";
        SecConfig = "SEC_CONFIG", "Security configuration";
        Login = "LOGIN", "Login";
        User = "USER", "User";
        Ca = "CA", "Certificate authority";
        Notify = "NOTIFY", "Notification";
    }
}

kinds! {
    /// Where a notification target delivers.
    pub enum TargetKind ("notification target kind", parse = exact) {
        Webhook = "webhook", "Webhook";
        Email = "email", "Email";
    }
}

kinds! {
    /// The events a notification target may subscribe to.
    pub enum NotifyEvent ("notification event", parse = exact) {
        CertExpiring = "cert_expiring", "Certificate expiring";
        CertExpired = "cert_expired", "Certificate expired";
        CertRevoked = "cert_revoked", "Certificate revoked";
        TokenUsedUp = "token_used_up", "Token used up";
        TokenExpiring = "token_expiring", "Token expiring";
        MappingConflict = "mapping_conflict", "Mapping conflict";
        AuditChainBroken = "audit_chain_broken", "Audit chain broken";
        CaExpiring = "ca_expiring", "CA expiring";
        CrlPublishFailed = "crl_publish_failed", "CRL failed to publish";
        Digest = "digest", "Daily digest";
        Test = "test", "Test";
    }
}

kinds! {
    /// Where a delivery is: waiting to be sent (or retried), held for the daily digest,
    /// summarised in a digest, sent, or given up.
    pub enum DeliveryState ("delivery state", parse = exact) {
        Pending = "pending", "Pending";
        Held = "held", "Held for digest";
        Digested = "digested", "In digest";
        Sent = "sent", "Sent";
        Failed = "failed", "Failed";
    }
}

kinds! {
    /// How an email target talks to its SMTP server.
    pub enum SmtpTls ("SMTP TLS mode", parse = exact) {
        Required = "required", "STARTTLS required";
        Opportunistic = "opportunistic", "STARTTLS if offered";
        None = "none", "None (plain SMTP)";
    }
}

kinds! {
    /// Whether what an audit event records succeeded.
    pub enum Outcome ("outcome", parse = exact) {
        Success = "success", "Success";
        Failure = "failure", "Failure";
    }
}

impl Outcome {
    pub fn succeeded(self) -> bool {
        self == Outcome::Success
    }
}

kinds! {
    /// The RFC 5280 revocation reasons an administrator may choose (and `superseded`, which
    /// renewals and reissues record).
    pub enum RevocationReason ("revocation reason", parse = exact) {
        Unspecified = "unspecified", "Unspecified";
        KeyCompromise = "key_compromise", "Key compromise";
        CaCompromise = "ca_compromise", "CA compromise";
        AffiliationChanged = "affiliation_changed", "Affiliation changed";
        Superseded = "superseded", "Superseded";
        CessationOfOperation = "cessation_of_operation", "Cessation of operation";
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn choices_read_as_a_list() {
        assert_eq!(super::or_list(&[]), "");
        assert_eq!(super::or_list(&["a"]), "a");
        assert_eq!(super::or_list(&["a", "b"]), "a or b");
        assert_eq!(super::TokenState::choices(), "active, expired or used_up");
    }

    use super::*;

    /// Every value of one set: its key parses back to it, serde writes the key as a JSON
    /// string and reads it back, and keys and labels are unique.
    fn round_trips<T>(all: &[T], key: fn(T) -> &'static str, label: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + serde::Serialize,
        T: serde::de::DeserializeOwned + std::fmt::Display,
    {
        let mut keys = std::collections::HashSet::new();
        let mut labels = std::collections::HashSet::new();
        for &v in all {
            let k = key(v);
            assert!(keys.insert(k), "duplicate key {k}");
            assert!(labels.insert(label(v)), "duplicate label {}", label(v));
            assert_eq!(k.parse::<T>().ok(), Some(v), "{k} does not parse back");
            assert_eq!(v.to_string(), k);
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{k}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
        assert!("".parse::<T>().is_err());
        assert!("no such value".parse::<T>().is_err());
        assert!(serde_json::from_str::<T>("\"no such value\"").is_err());
    }

    #[test]
    fn every_value_round_trips() {
        round_trips(Role::ALL, Role::key, Role::label);
        round_trips(TokenKind::ALL, TokenKind::key, TokenKind::label);
        round_trips(TokenState::ALL, TokenState::key, TokenState::label);
        round_trips(TokenSort::ALL, TokenSort::key, TokenSort::label);
        round_trips(ApiKeyState::ALL, ApiKeyState::key, ApiKeyState::label);
        round_trips(CertStatus::ALL, CertStatus::key, CertStatus::label);
        round_trips(CertSort::ALL, CertSort::key, CertSort::label);
        round_trips(CertAttention::ALL, CertAttention::key, CertAttention::label);
        round_trips(HostSort::ALL, HostSort::key, HostSort::label);
        round_trips(MappingState::ALL, MappingState::key, MappingState::label);
        round_trips(MappingSource::ALL, MappingSource::key, MappingSource::label);
        round_trips(SecurityLevel::ALL, SecurityLevel::key, SecurityLevel::label);
        round_trips(AuditCategory::ALL, AuditCategory::key, AuditCategory::label);
        round_trips(Outcome::ALL, Outcome::key, Outcome::label);
        round_trips(
            RevocationReason::ALL,
            RevocationReason::key,
            RevocationReason::label,
        );
    }

    #[test]
    fn keys_match_all() {
        assert_eq!(
            Role::KEYS,
            Role::ALL.iter().map(|r| r.key()).collect::<Vec<_>>()
        );
        assert_eq!(AuditCategory::KEYS.len(), AuditCategory::ALL.len());
    }

    #[test]
    fn case_rules() {
        // The audit filter took categories in any case; everything else exactly.
        assert_eq!(AuditCategory::parse("token"), Some(AuditCategory::Token));
        assert_eq!(
            AuditCategory::parse("Sec_Config"),
            Some(AuditCategory::SecConfig)
        );
        assert_eq!(Role::parse("Administrator"), None);
        assert_eq!(Outcome::parse("SUCCESS"), None);
        assert_eq!(RevocationReason::parse("Superseded"), None);
    }

    #[test]
    fn unknown_value_is_named_and_cut() {
        let e = Role::parse_or_err("superuser").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown role 'superuser' (expected one of: administrator, security_admin, viewer)"
        );
        let long = "x".repeat(1000);
        let e = Role::parse_or_err(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
    }
}

kinds! {
    /// How a certificate was obtained.
    #[derive(Default)]
    pub enum IssuedVia ("issuance method", parse = exact) {
        #[default]
        Enrollment = "enrollment", "Enrollment API";
        Renewal = "renewal", "Renewal";
        Acme = "acme", "ACME";
        Server = "server", "Server (TLS)";
    }
}

kinds! {
    /// An ACME account's status (RFC 8555 §7.1.2).
    pub enum AcmeAccountStatus ("ACME account status", parse = exact) {
        Valid = "valid", "Valid";
        Deactivated = "deactivated", "Deactivated";
        Revoked = "revoked", "Revoked";
    }
}

kinds! {
    /// What bound an ACME account: a token given as its External Account Binding, or
    /// nothing (security level medium: every name is proved by a challenge).
    pub enum AcmeBinding ("ACME account binding", parse = exact) {
        Authorization = "authorization", "Authorization token";
        Reissue = "reissue", "Reissue token";
        Unbound = "none", "No token (challenges)";
    }
}

kinds! {
    /// An ACME order's status (RFC 8555 §7.1.6).
    pub enum AcmeOrderStatus ("ACME order status", parse = exact) {
        Pending = "pending", "Pending";
        Ready = "ready", "Ready";
        Processing = "processing", "Processing";
        Valid = "valid", "Valid";
        Invalid = "invalid", "Invalid";
    }
}

kinds! {
    /// An ACME authorization's or challenge's status (RFC 8555 §7.1.6).
    pub enum AcmeAuthzStatus ("ACME authorization status", parse = exact) {
        Pending = "pending", "Pending";
        Processing = "processing", "Processing";
        Valid = "valid", "Valid";
        Invalid = "invalid", "Invalid";
        Deactivated = "deactivated", "Deactivated";
        Expired = "expired", "Expired";
        Revoked = "revoked", "Revoked";
    }
}

kinds! {
    /// The challenges that prove control of a name (RFC 8555 §8.3, RFC 8737).
    pub enum ChallengeType ("ACME challenge type", parse = exact) {
        Http01 = "http-01", "HTTP (port 80)";
        TlsAlpn01 = "tls-alpn-01", "TLS-ALPN (port 443)";
    }
}

kinds! {
    /// What a CA certificate signs.
    pub enum IssuerRole ("issuer role", parse = exact) {
        /// A self-signed root that signs issuing CAs and its own ARL, never hosts.
        Root = "root", "Root CA";
        /// Signed by a root; signs hosts, the server's TLS certificates and its CRL.
        Issuing = "issuing", "Issuing CA";
        /// The one self-signed CA of an installation from before the hierarchy: it signs
        /// hosts itself until a CA migration moves them to an issuing CA.
        RootIssuing = "root_issuing", "Root CA (signs hosts)";
    }
}

impl IssuerRole {
    /// Whether certificates of hosts come from a CA of this role.
    pub fn signs_leaves(self) -> bool {
        !matches!(self, IssuerRole::Root)
    }
}

kinds! {
    /// Where a CA stands in its life (and in a CA migration).
    pub enum IssuerState ("issuer state", parse = exact) {
        /// Created by a migration's initiate: trusted (in the bundle), signs nothing yet.
        Pending = "pending", "Pending";
        /// Signs new certificates (an issuing CA), or issuing CAs (a root).
        Active = "active", "Active";
        /// Replaced by an activated migration: signs nothing but its CRL; its hosts renew
        /// into the new CA.
        Retiring = "retiring", "Retiring";
        /// The migration completed: signs only its CRL, until its last leaf expires.
        Retired = "retired", "Retired";
    }
}

kinds! {
    /// The phase of a CA migration.
    pub enum MigrationPhase ("migration phase", parse = exact) {
        Initiated = "initiated", "Initiated";
        Activated = "activated", "Activated";
        Completed = "completed", "Completed";
        Decommissioned = "decommissioned", "Decommissioned";
    }
}

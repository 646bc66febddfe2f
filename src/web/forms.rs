//! The shapes of the console's forms, read by `CsrfForm<T>` (a field not sent is empty).
//! Forms that carry a service's whole input (`TokenInput`, `ReissueInput`) use that type.

use serde::Deserialize;

/// One name: a new host, a new mapping.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameForm {
    pub name: String,
}

/// A revocation: the RFC 5280 reason, and the page to return to.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeForm {
    pub reason: String,
    pub return_to: Option<String>,
}

/// A button that returns to the page it was pressed on.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReturnTo {
    pub return_to: Option<String>,
}

/// Open or close a host's auto-reissue window.
#[derive(Debug, Deserialize)]
pub struct AutoReissueForm {
    pub action: Switch,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    Allow,
    Disallow,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewUserForm {
    pub username: String,
    pub role: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleForm {
    pub role: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    pub password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangePasswordForm {
    pub current: String,
    pub new: String,
    pub confirm: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ApiKeyForm {
    pub name: String,
    pub valid_for: String,
}

/// The settings form; `renewal_interval_minutes` absent (an older form) keeps the value.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    pub security_level: String,
    /// A checkbox: sent as `on` (or `true`) when ticked, not sent otherwise.
    pub auto_map_host_names: Option<String>,
    pub certificate_validity_days: String,
    pub auto_reissue_minutes: String,
    pub audit_retention_days: String,
    pub reason: String,
    pub renewal_interval_minutes: Option<String>,
    pub allowed_domains: String,
    pub reserved_names: String,
}

impl From<SettingsForm> for crate::services::settings::SettingsInput {
    fn from(f: SettingsForm) -> Self {
        crate::services::settings::SettingsInput {
            security_level: f.security_level,
            auto_map_host_names: f
                .auto_map_host_names
                .is_some_and(|v| v == "on" || v == "true"),
            certificate_validity_days: f.certificate_validity_days,
            auto_reissue_minutes: f.auto_reissue_minutes,
            audit_retention_days: f.audit_retention_days,
            reason: f.reason,
            renewal_interval_minutes: f.renewal_interval_minutes,
            allowed_domains: f.allowed_domains,
            reserved_names: f.reserved_names,
        }
    }
}

//! Administration from the command line, through the admin API: tokens, certificates,
//! hosts and mappings. Tables for people, `--json` for scripts.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{CliResult, Client};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an authorization token, or with --reissue a reissue token for one host.
    Create(TokenCreate),
    /// List tokens.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a token's value (audited).
    Show { name: String },
    /// Delete tokens.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete every expired and used-up token.
    Cleanup,
    /// A token's details (not its value).
    Details { name: String },
}

#[derive(Args)]
pub struct TokenCreate {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    max_uses: Option<u32>,
    /// Like 1d, 12h, 2d6h30m.
    #[arg(long)]
    valid_for: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    /// A single-use reissue token for the host given by --host or --host-id.
    #[arg(long)]
    reissue: bool,
    #[arg(long, requires = "reissue")]
    host: Option<String>,
    #[arg(long, requires = "reissue")]
    host_id: Option<String>,
}

#[derive(Subcommand)]
pub enum CertCommand {
    /// List certificates.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        search: Option<String>,
        /// Only active certificates that expire within this many days.
        #[arg(long, value_name = "DAYS")]
        expires_within: Option<u32>,
        /// renewal-missed, lapsed or recently-revoked.
        #[arg(long)]
        view: Option<String>,
    },
    /// Revoke one certificate, or every active certificate of a host.
    Revoke {
        #[arg(long, group = "which")]
        serial: Option<String>,
        #[arg(long, group = "which")]
        host: Option<String>,
        #[arg(long, group = "which")]
        host_id: Option<String>,
        /// unspecified, key_compromise, ca_compromise, affiliation_changed, superseded, cessation_of_operation
        #[arg(long)]
        reason: String,
    },
    /// One certificate's details.
    Show { serial: String },
    /// Write one certificate's PEM to standard output or --out FILE.
    Download {
        serial: String,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// List hosts.
    List {
        #[arg(long)]
        search: Option<String>,
    },
    /// Register a known host by its primary name.
    Add { name: String },
    /// A host (by primary name or host ID) with its mappings and certificates.
    Show { host: String },
    /// Revoke every active certificate of a host (by primary name or host ID).
    Revoke {
        host: String,
        /// unspecified, key_compromise, ca_compromise, affiliation_changed, superseded, cessation_of_operation
        #[arg(long)]
        reason: String,
    },
    /// Open (--allow, for the configured minutes) or close (--disallow) a host's
    /// auto-reissue window.
    #[command(group(clap::ArgGroup::new("decision").required(true).args(["allow", "disallow"])))]
    AutoReissue {
        host: String,
        #[arg(long)]
        allow: bool,
        #[arg(long)]
        disallow: bool,
    },
    /// Deactivate one of a host's ACME accounts (`host show` lists them).
    DeactivateAcmeAccount {
        host: String,
        /// The account's ID; it may begin with '-' (base64url).
        #[arg(allow_hyphen_values = true)]
        account: String,
    },
    /// Renew every host now (a drill, a suspected compromise): every host with an active
    /// certificate may renew once, at once; agents re-key at their next poll. Audited.
    RenewAll {
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Approve a host name mapping.
    Approve(MappingArgs),
    /// Reject a host name mapping.
    Reject(MappingArgs),
    /// Map a name to a host.
    Add(MappingArgs),
    /// Delete a host name mapping.
    Delete(MappingArgs),
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Show the global security settings.
    Get,
    /// Change settings: KEY=VALUE pairs (lists such as allowed_domains comma-separated);
    /// the others stay.
    Set {
        /// Why (required, audited).
        #[arg(long)]
        reason: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
}

/// Filters of the audit trail, as on the Security > Audit page.
#[derive(Args)]
pub struct AuditFilter {
    /// TOKEN, CERT, HOST, SEC_CONFIG, LOGIN or USER
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// success or failure
    #[arg(long)]
    outcome: Option<String>,
    /// A date (YYYY-MM-DD) or time, UTC.
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    search: Option<String>,
}

impl AuditFilter {
    fn query(&self, page: Option<String>) -> String {
        query(&[
            ("category", &self.category),
            ("user", &self.user),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.search),
            ("page", &page),
        ])
    }
}

#[derive(Args)]
pub struct MappingArgs {
    /// The host: its primary name or host ID.
    #[arg(long)]
    host: String,
    /// The mapped name.
    #[arg(long)]
    name: String,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(params: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A table: a header and rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", human(value));
    }
}

fn token_table(v: &Value) -> String {
    let rows = v["tokens"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            vec![
                s(&t["name"]),
                s(&t["kind"]),
                s(&t["state"]),
                format!("{} / {}", t["uses"], t["max_uses"]),
                s(&t["valid_until"]),
                s(&t["host_id"]),
                s(&t["created_by"]),
            ]
        })
        .collect();
    format!(
        "{}\n({} of {} shown)",
        table(
            &[
                "NAME",
                "TYPE",
                "STATE",
                "USES",
                "VALID UNTIL",
                "HOST ID",
                "CREATED BY"
            ],
            rows
        ),
        v["tokens"].as_array().map(|a| a.len()).unwrap_or(0),
        v["total"]
    )
}

fn token_details(t: &Value) -> String {
    table(
        &["FIELD", "VALUE"],
        [
            "name",
            "kind",
            "state",
            "uses",
            "max_uses",
            "valid_until",
            "host_id",
            "reason",
            "created_by",
            "created_at",
            "last_used_at",
            "last_used_by",
        ]
        .iter()
        .map(|k| vec![k.to_string(), s(&t[*k])])
        .collect(),
    )
}

pub fn token(c: &Client, cmd: TokenCommand, json_out: bool) -> CliResult<()> {
    match cmd {
        TokenCommand::Create(a) => {
            let v = if a.reissue {
                let body = json!({
                    "host": a.host, "host_id": a.host_id, "name": a.name,
                    "valid_for": a.valid_for, "reason": a.reason,
                });
                if a.host.is_some() == a.host_id.is_some() {
                    return Err("--reissue needs exactly one of --host and --host-id".into());
                }
                c.json("POST", "/api/v1/tokens/reissue", Some(&body))?
            } else {
                let name = a.name.ok_or("--name is required")?;
                let body = json!({"name": name, "max_uses": a.max_uses, "valid_for": a.valid_for, "reason": a.reason});
                c.json("POST", "/api/v1/tokens", Some(&body))?
            };
            print(json_out, &v, |t| {
                format!(
                    "Created token {}. Show its value with: hostca token show {}",
                    s(&t["name"]),
                    s(&t["name"])
                )
            });
        }
        TokenCommand::List { state, search } => {
            let v = c.json(
                "GET",
                &format!(
                    "/api/v1/tokens{}",
                    query(&[("state", &state), ("q", &search)])
                ),
                None,
            )?;
            print(json_out, &v, token_table);
        }
        TokenCommand::Show { name } => {
            let v = c.json("POST", &format!("/api/v1/tokens/{}/show", enc(&name)), None)?;
            print(json_out, &v, |t| s(&t["value"]));
        }
        TokenCommand::Delete { names } => {
            let v = match names.as_slice() {
                [one] => c.json("DELETE", &format!("/api/v1/tokens/{}", enc(one)), None)?,
                _ => c.json(
                    "POST",
                    "/api/v1/tokens/delete",
                    Some(&json!({"names": names})),
                )?,
            };
            print(json_out, &v, |r| {
                format!("Deleted {} token(s).", r["deleted"])
            });
        }
        TokenCommand::Details { name } => return token_details_cmd(c, &name, json_out),
        TokenCommand::Cleanup => {
            let v = c.json("POST", "/api/v1/tokens/cleanup", None)?;
            print(json_out, &v, |r| {
                format!(
                    "Cleanup removed {} expired or used-up token(s).",
                    r["deleted"]
                )
            });
        }
    }
    Ok(())
}

pub fn token_details_cmd(c: &Client, name: &str, json_out: bool) -> CliResult<()> {
    let v = c.json("GET", &format!("/api/v1/tokens/{}", enc(name)), None)?;
    print(json_out, &v, token_details);
    Ok(())
}

pub fn cert(c: &Client, cmd: CertCommand, json_out: bool) -> CliResult<()> {
    match cmd {
        CertCommand::List {
            status,
            search,
            expires_within,
            view,
        } => {
            let expires_within = expires_within.map(|d| d.to_string());
            let v = c.json(
                "GET",
                &format!(
                    "/api/v1/certificates{}",
                    query(&[
                        ("status", &status),
                        ("q", &search),
                        ("expires_within", &expires_within),
                        ("view", &view)
                    ])
                ),
                None,
            )?;
            print(json_out, &v, |v| {
                let rows = v["certificates"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        vec![
                            s(&c["host_name"]),
                            s(&c["host_id"]),
                            s(&c["serial"]),
                            s(&c["not_before"]),
                            s(&c["not_after"]),
                            s(&c["status"]),
                        ]
                    })
                    .collect();
                table(
                    &["HOST", "HOST ID", "SERIAL", "ISSUED", "EXPIRES", "STATUS"],
                    rows,
                )
            });
        }
        CertCommand::Revoke {
            serial,
            host,
            host_id,
            reason,
        } => {
            let body = json!({"reason": reason});
            let v = match (serial, host.or(host_id)) {
                (Some(sn), None) => c.json(
                    "POST",
                    &format!("/api/v1/certificates/{}/revoke", enc(&sn)),
                    Some(&body),
                )?,
                (None, Some(h)) => c.json(
                    "POST",
                    &format!("/api/v1/hosts/{}/revoke", enc(&h)),
                    Some(&body),
                )?,
                _ => return Err("give one of --serial, --host and --host-id".into()),
            };
            print(json_out, &v, |r| match r.get("revoked") {
                Some(n) => format!("Revoked {n} certificate(s)."),
                None => format!("Revoked certificate {}.", s(&r["serial"])),
            });
        }
        CertCommand::Show { serial } => {
            let v = c.json(
                "GET",
                &format!("/api/v1/certificates/{}", enc(&serial)),
                None,
            )?;
            print(json_out, &v, cert_details);
        }
        CertCommand::Download { serial, out } => {
            let v = c.json(
                "GET",
                &format!("/api/v1/certificates/{}", enc(&serial)),
                None,
            )?;
            let pem = v["pem"].as_str().ok_or("the server's answer has no PEM")?;
            match out {
                Some(path) => {
                    std::fs::write(&path, pem)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    if json_out {
                        print(true, &json!({"serial": v["serial"], "out": path}), |_| {
                            String::new()
                        });
                    } else {
                        println!(
                            "Certificate {} written to {}.",
                            s(&v["serial"]),
                            path.display()
                        );
                    }
                }
                None => print!("{pem}"),
            }
        }
    }
    Ok(())
}

fn cert_details(c: &Value) -> String {
    let mut rows: Vec<Vec<String>> = [
        "serial",
        "host_name",
        "host_id",
        "subject",
        "status",
        "not_before",
        "not_after",
        "sha256_fingerprint",
        "revoked_at",
        "revocation_reason",
        "revoked_by",
        "token_name",
    ]
    .iter()
    .map(|k| vec![k.to_string(), s(&c[*k])])
    .collect();
    let names = c["names"]
        .as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    rows.insert(3, vec!["names".into(), names]);
    table(&["FIELD", "VALUE"], rows)
}

fn host_details(h: &Value) -> String {
    let fields = table(
        &["FIELD", "VALUE"],
        [
            "primary_name",
            "host_id",
            "created_at",
            "created_by",
            "auto_reissue_until",
        ]
        .iter()
        .map(|k| vec![k.to_string(), s(&h[*k])])
        .collect(),
    );
    let list = |k: &str| h[k].as_array().cloned().unwrap_or_default();
    let mappings = table(
        &["MAPPING", "STATE", "SOURCE", "PRIMARY", "SHARED WITH"],
        list("mappings")
            .iter()
            .map(|m| {
                let shared = m["shared_with"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                vec![
                    s(&m["name"]),
                    s(&m["state"]),
                    s(&m["source"]),
                    s(&m["primary"]),
                    if shared.is_empty() {
                        "-".into()
                    } else {
                        shared
                    },
                ]
            })
            .collect(),
    );
    let certs = table(
        &["SERIAL", "ISSUED", "EXPIRES", "STATUS"],
        list("certificates")
            .iter()
            .map(|c| {
                vec![
                    s(&c["serial"]),
                    s(&c["not_before"]),
                    s(&c["not_after"]),
                    s(&c["status"]),
                ]
            })
            .collect(),
    );
    format!("{fields}\n\n{mappings}\n\n{certs}")
}

pub fn host(c: &Client, cmd: HostCommand, json_out: bool) -> CliResult<()> {
    match cmd {
        HostCommand::List { search } => {
            let v = c.json(
                "GET",
                &format!("/api/v1/hosts{}", query(&[("q", &search)])),
                None,
            )?;
            print(json_out, &v, |v| {
                let rows = v["hosts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|h| {
                        let others = h["other_names"]
                            .as_array()
                            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
                            .unwrap_or_default();
                        vec![
                            s(&h["primary_name"]),
                            s(&h["host_id"]),
                            if others.is_empty() {
                                "-".into()
                            } else {
                                others
                            },
                            s(&h["certificate_status"]),
                            s(&h["last_issued"]),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "HOST",
                        "HOST ID",
                        "OTHER NAMES",
                        "CERTIFICATE",
                        "LAST ISSUED",
                    ],
                    rows,
                )
            });
        }
        HostCommand::Add { name } => {
            let v = c.json("POST", "/api/v1/hosts", Some(&json!({"name": name})))?;
            print(json_out, &v, |h| {
                format!(
                    "Added host {} with host ID {}.",
                    s(&h["primary_name"]),
                    s(&h["host_id"])
                )
            });
        }
        HostCommand::Show { host } => {
            let v = c.json("GET", &format!("/api/v1/hosts/{}", enc(&host)), None)?;
            print(json_out, &v, host_details);
        }
        HostCommand::Revoke { host, reason } => {
            let v = c.json(
                "POST",
                &format!("/api/v1/hosts/{}/revoke", enc(&host)),
                Some(&json!({"reason": reason})),
            )?;
            print(json_out, &v, |r| {
                format!("Revoked {} certificate(s) of {host}.", r["revoked"])
            });
        }
        HostCommand::AutoReissue {
            host,
            allow,
            disallow: _,
        } => {
            let v = c.json(
                "POST",
                &format!("/api/v1/hosts/{}/auto-reissue", enc(&host)),
                Some(&json!({"allow": allow})),
            )?;
            print(json_out, &v, |r| match r["auto_reissue_until"].as_str() {
                Some(until) => format!("Auto-reissue of {host} allowed until {until}."),
                None => format!("Auto-reissue of {host} disallowed."),
            });
        }
        HostCommand::RenewAll { reason } => {
            let v = c.json(
                "POST",
                "/api/v1/hosts/renew-all",
                Some(&json!({"reason": reason})),
            )?;
            print(json_out, &v, |r| {
                format!(
                    "{} host(s) marked to renew now; their agents re-key at the next poll.",
                    r["marked"]
                )
            });
        }
        HostCommand::DeactivateAcmeAccount { host, account } => {
            let v = c.json(
                "POST",
                &format!(
                    "/api/v1/hosts/{}/acme-accounts/{}/deactivate",
                    enc(&host),
                    enc(&account)
                ),
                None,
            )?;
            print(json_out, &v, |r| {
                format!("ACME account {} of {host} deactivated.", r["account_id"])
            });
        }
    }
    Ok(())
}

pub fn mapping(c: &Client, cmd: MappingCommand, json_out: bool) -> CliResult<()> {
    let (a, decision) = match cmd {
        MappingCommand::Approve(a) => (a, "approve"),
        MappingCommand::Reject(a) => (a, "reject"),
        MappingCommand::Add(a) => {
            let v = c.json(
                "POST",
                &format!("/api/v1/hosts/{}/mappings", enc(&a.host)),
                Some(&json!({"name": a.name})),
            )?;
            print(json_out, &v, |r| {
                format!("Mapped {} to {}: {}.", a.name, a.host, s(&r["state"]))
            });
            return Ok(());
        }
        MappingCommand::Delete(a) => (a, "delete"),
    };
    let v = if decision == "delete" {
        c.json(
            "DELETE",
            &format!("/api/v1/hosts/{}/mappings/{}", enc(&a.host), enc(&a.name)),
            None,
        )?
    } else {
        c.json(
            "POST",
            &format!(
                "/api/v1/hosts/{}/mappings/{}/{decision}",
                enc(&a.host),
                enc(&a.name)
            ),
            None,
        )?
    };
    print(json_out, &v, |_| {
        format!("Mapping {} of {}: {decision} done.", a.name, a.host)
    });
    Ok(())
}

/// Settings whose value is a list: given comma-separated on the command line.
const LIST_SETTINGS: &[&str] = &["allowed_domains", "reserved_names"];

/// The JSON body for `settings set`: typed values where the API wants them (booleans,
/// integers, lists), text elsewhere (the server checks ranges and says what is wrong).
fn settings_body(reason: &str, pairs: &[String]) -> CliResult<Value> {
    let mut body = serde_json::Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "'{pair}' is not KEY=VALUE, e.g. certificate_validity_days=90"
            ));
        };
        let key = key.trim();
        let value = if LIST_SETTINGS.contains(&key) {
            Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_string()))
                    .collect(),
            )
        } else if key == "auto_map_host_names" {
            match value.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => {
                    return Err(format!(
                        "auto_map_host_names must be true or false, not '{other}'"
                    ))
                }
            }
        } else if let Ok(n) = value.trim().parse::<i64>() {
            // The API takes numbers as JSON numbers; anything else goes as typed, and the
            // server's 400 names the setting.
            Value::from(n)
        } else {
            Value::String(value.trim().to_string())
        };
        if body.insert(key.to_string(), value).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
    body.insert("reason".into(), Value::String(reason.to_string()));
    Ok(Value::Object(body))
}

fn settings_table(v: &Value) -> String {
    let rows = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::Array(a) if a.is_empty() => "-".into(),
                        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
                        other => s(other),
                    };
                    vec![k.clone(), value]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["SETTING", "VALUE"], rows)
}

pub fn settings(c: &Client, cmd: SettingsCommand, json_out: bool) -> CliResult<()> {
    let v = match cmd {
        SettingsCommand::Get => c.json("GET", "/api/v1/settings", None)?,
        SettingsCommand::Set { reason, pairs } => {
            let body = settings_body(&reason, &pairs)?;
            c.json("PUT", "/api/v1/settings", Some(&body))?
        }
    };
    print(json_out, &v, settings_table);
    Ok(())
}

/// One page of the audit trail, as the API gives it.
fn audit_page(c: &Client, filter: &AuditFilter, page: i64) -> CliResult<Value> {
    c.json(
        "GET",
        &format!("/api/v1/audit{}", filter.query(Some(page.to_string()))),
        None,
    )
}

const AUDIT_FIELDS: &[&str] = &[
    "id",
    "at",
    "category",
    "action",
    "user",
    "target",
    "description",
    "reason",
    "outcome",
];

pub fn audit_list(c: &Client, filter: &AuditFilter, page: i64, json_out: bool) -> CliResult<()> {
    let v = audit_page(c, filter, page)?;
    print(json_out, &v, |v| {
        let events = v["events"].as_array().cloned().unwrap_or_default();
        let rows = events
            .iter()
            .map(|e| AUDIT_FIELDS.iter().map(|k| s(&e[*k])).collect())
            .collect();
        let header: Vec<String> = AUDIT_FIELDS.iter().map(|f| f.to_uppercase()).collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        format!(
            "{}\n(page {}: {} of {} shown)",
            table(&header, rows),
            v["page"],
            events.len(),
            v["total"]
        )
    });
    Ok(())
}

/// A CSV field as the console's export writes it: quoted, and a leading = + - @ tab or
/// CR defused so that a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    crate::services::audit_log::csv_field(s)
}

/// The audit trail as CSV with the columns of /security/audit.csv, built from the API's
/// pages (the admin API has no CSV route). The API does not give the chain hash: that
/// column stays empty; `hostca audit verify` checks the chain.
pub fn audit_export(
    c: &Client,
    filter: &AuditFilter,
    out: Option<&std::path::Path>,
) -> CliResult<()> {
    let mut csv = String::from(crate::services::audit_log::CSV_HEADER);
    let mut seen = std::collections::HashSet::new();
    let mut page = 1;
    loop {
        let v = audit_page(c, filter, page)?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for e in &events {
            // Events written while paging shift the pages: an event may come twice.
            if !seen.insert(e["id"].as_i64().unwrap_or_default()) {
                continue;
            }
            let text = |k: &str| csv_field(e[k].as_str().unwrap_or_default());
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},\r\n",
                e["id"],
                e["at"].as_str().unwrap_or_default(),
                text("category"),
                text("action"),
                text("user"),
                text("target"),
                text("description"),
                text("reason"),
                text("outcome"),
            ));
        }
        let (total, size) = (
            v["total"].as_i64().unwrap_or(0),
            v["page_size"].as_i64().unwrap_or(1).max(1),
        );
        if page * size >= total {
            break;
        }
        page += 1;
    }
    match out {
        Some(path) => {
            std::fs::write(path, &csv)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("{} audit events written to {}.", seen.len(), path.display());
        }
        None => print!("{csv}"),
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// The CAs, where their keys are, and the CA migration in progress with its counts.
    Show,
    /// A step of a CA migration: initiate, activate, complete, decommission, mark-renewal.
    Migrate {
        #[command(subcommand)]
        step: MigrateStep,
    },
    /// Hosts that have not fetched the trust bundle since the migration began.
    PendingTrust {
        /// As CSV (host_id,name,trust_seen_at).
        #[arg(long)]
        csv: bool,
    },
    /// Hosts whose active certificate is still from the migration's old CA.
    PendingRenewal {
        #[arg(long)]
        csv: bool,
    },
    /// On the server's data: write the root CA's key, sealed under a passphrase, to a file
    /// that goes offline.
    ExportRoot {
        #[command(flatten)]
        store: super::StoreArgs,
        #[command(flatten)]
        ca: super::CaArgs,
        #[arg(long)]
        out: PathBuf,
        /// The name of an environment variable holding the passphrase (else a prompt or stdin).
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// On the server's data: delete the root CA's key file once `export-root` wrote a
    /// copy (which this checks opens with the passphrase and holds the root's key).
    RemoveRootKey {
        #[command(flatten)]
        store: super::StoreArgs,
        #[command(flatten)]
        ca: super::CaArgs,
        /// The file export-root wrote.
        #[arg(long)]
        exported: PathBuf,
        #[arg(long)]
        passphrase_env: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum MigrateStep {
    /// A new issuing CA (or with --new-root a new root and issuing CA), trusted but not
    /// signing yet (administrators).
    Initiate {
        #[arg(long)]
        reason: String,
        #[arg(long)]
        new_root: bool,
        /// p256, p384, rsa3072 or rsa4096 (default: the current CA's).
        #[arg(long)]
        key_type: Option<String>,
        /// A PKCS#11 URI for the new issuing CA's key.
        #[arg(long)]
        key_uri: Option<String>,
        /// When the root key is offline: the file export-root wrote.
        #[arg(long)]
        root_key: Option<PathBuf>,
        /// The environment variable holding that file's passphrase (else a prompt).
        #[arg(long)]
        root_key_passphrase_env: Option<String>,
    },
    /// The new CA signs new certificates.
    Activate {
        #[arg(long)]
        reason: String,
    },
    /// The old CA signs only its CRL (refused while it has active certificates, unless --force).
    Complete {
        #[arg(long)]
        reason: String,
        #[arg(long)]
        force: bool,
    },
    /// The old CA leaves the trust bundle.
    Decommission {
        #[arg(long)]
        reason: String,
    },
    /// Every host pending renewal may renew early once.
    MarkRenewal {
        #[arg(long)]
        reason: String,
    },
}

fn migration_line(r: &Value) -> String {
    format!(
        "CA migration #{} ({} -> {}): {}",
        r["id"],
        r["from_issuer_id"],
        r["to_issuer_id"],
        r["phase"].as_str().unwrap_or("?")
    )
}

fn pending_list(c: &Client, path: &str, csv: bool, json_out: bool) -> CliResult<()> {
    let v = c.json("GET", path, None)?;
    let rows = v.as_array().cloned().unwrap_or_default();
    if csv {
        println!("host_id,name,trust_seen_at");
        for r in &rows {
            println!(
                "{},{},{}",
                r["host_id"].as_str().unwrap_or_default(),
                csv_field(r["name"].as_str().unwrap_or_default()),
                r["trust_seen_at"].as_str().unwrap_or_default()
            );
        }
        return Ok(());
    }
    print(json_out, &v, |_| {
        let mut out = format!("{} host(s)", rows.len());
        for r in &rows {
            out.push_str(&format!(
                "\n{}  {}",
                r["host_id"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            ));
        }
        out
    });
    Ok(())
}

pub fn ca(c: &Client, cmd: CaCommand, json_out: bool) -> CliResult<()> {
    match cmd {
        CaCommand::Show => {
            let v = c.json("GET", "/api/v1/ca", None)?;
            print(json_out, &v, |r| {
                let mut out = format!(
                    "Root fingerprint (SHA-256): {}",
                    r["root_fingerprint"].as_str().unwrap_or_default()
                );
                for i in r["issuers"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n#{} {} {} {}{} key {} until {}",
                        i["id"],
                        i["role"].as_str().unwrap_or_default(),
                        i["state"].as_str().unwrap_or_default(),
                        i["subject"].as_str().unwrap_or_default(),
                        if i["signing"].as_bool() == Some(true) {
                            " (signs)"
                        } else {
                            ""
                        },
                        i["key_location"].as_str().unwrap_or_default(),
                        i["not_after"].as_str().unwrap_or_default()
                    ));
                }
                if r["migration"].is_object() {
                    out.push_str(&format!(
                        "\n{}; hosts pending trust {}, pending renewal {}",
                        migration_line(&r["migration"]),
                        r["pending_trust"],
                        r["pending_renewal"]
                    ));
                }
                out
            });
        }
        CaCommand::PendingTrust { csv } => {
            pending_list(c, "/api/v1/ca/migration/pending-trust", csv, json_out)?
        }
        CaCommand::PendingRenewal { csv } => {
            pending_list(c, "/api/v1/ca/migration/pending-renewal", csv, json_out)?
        }
        CaCommand::Migrate { step } => {
            let (path, body) = match step {
                MigrateStep::Initiate {
                    reason,
                    new_root,
                    key_type,
                    key_uri,
                    root_key,
                    root_key_passphrase_env,
                } => {
                    let mut body = json!({"reason": reason, "new_root": new_root, "key_type": key_type, "key_uri": key_uri});
                    if let Some(file) = root_key {
                        use base64::Engine;
                        let bytes = std::fs::read(&file)
                            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                        let passphrase = super::read_password(root_key_passphrase_env.as_deref())?;
                        body["root_key"] =
                            json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                        body["root_key_passphrase"] = json!(passphrase);
                    }
                    ("initiate", body)
                }
                MigrateStep::Activate { reason } => ("activate", json!({"reason": reason})),
                MigrateStep::Complete { reason, force } => {
                    ("complete", json!({"reason": reason, "force": force}))
                }
                MigrateStep::Decommission { reason } => ("decommission", json!({"reason": reason})),
                MigrateStep::MarkRenewal { reason } => ("mark-renewal", json!({"reason": reason})),
            };
            let v = c.json("POST", &format!("/api/v1/ca/migration/{path}"), Some(&body))?;
            print(json_out, &v, |r| match r["marked"].as_u64() {
                Some(n) => format!("{n} host(s) marked for renewal."),
                None => migration_line(r),
            });
        }
        CaCommand::ExportRoot { .. } | CaCommand::RemoveRootKey { .. } => {
            return Err("export-root and remove-root-key run on the server's data directory".into())
        }
    }
    Ok(())
}

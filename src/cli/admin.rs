//! Administration from the command line, through the admin API: tokens, certificates,
//! hosts and mappings. Tables for people, `--json` for scripts.

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
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// List hosts.
    List {
        #[arg(long)]
        search: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Approve a host name mapping.
    Approve(MappingArgs),
    /// Reject a host name mapping.
    Reject(MappingArgs),
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
            let v = c.json(
                "POST",
                "/api/v1/tokens/delete",
                Some(&json!({"names": names})),
            )?;
            print(json_out, &v, |r| {
                format!("Deleted {} token(s).", r["deleted"])
            });
        }
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
        CertCommand::List { status, search } => {
            let v = c.json(
                "GET",
                &format!(
                    "/api/v1/certificates{}",
                    query(&[("status", &status), ("q", &search)])
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
    }
    Ok(())
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
    }
    Ok(())
}

pub fn mapping(c: &Client, cmd: MappingCommand, json_out: bool) -> CliResult<()> {
    let (a, decision) = match cmd {
        MappingCommand::Approve(a) => (a, "approve"),
        MappingCommand::Reject(a) => (a, "reject"),
    };
    let v = c.json(
        "POST",
        &format!(
            "/api/v1/hosts/{}/mappings/{}/{decision}",
            enc(&a.host),
            enc(&a.name)
        ),
        None,
    )?;
    print(json_out, &v, |_| {
        format!("Mapping {} of {}: {decision} done.", a.name, a.host)
    });
    Ok(())
}

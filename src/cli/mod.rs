//! The `hostca` command line: the server, its maintenance, administration through the
//! API, and the host-side client.

pub mod admin;
pub mod agent;
pub mod client;
pub mod host;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;
use client::{CliResult, Client};

#[derive(Parser)]
#[command(
    name = "hostca",
    version,
    about = "A certificate authority for the hosts of one security domain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web console and the API.
    Serve(ServeArgs),
    /// Audit trail tools (on the server's data).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// User administration on the server's data, e.g. when every administrator is locked out.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write an encrypted backup of the database, the keys and the CA.
    Backup {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        out: PathBuf,
        /// The name of an environment variable holding the passphrase (else a prompt or stdin).
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// Restore a backup into a new data directory (and an empty database).
    Restore {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// Authorization and reissue tokens (admin API).
    Token(Api<admin::TokenCommand>),
    /// Certificates (admin API).
    Cert(Api<admin::CertCommand>),
    /// Hosts (admin API).
    Host(Api<admin::HostCommand>),
    /// Host name mappings (admin API).
    Mapping(Api<admin::MappingCommand>),
    /// The global security settings (admin API).
    Settings(Api<admin::SettingsCommand>),
    /// The CAs and CA migration (admin API); the root key leaving the server (on the
    /// server's data).
    Ca(Api<admin::CaCommand>),
    /// Host: fetch the CA certificate, check its fingerprint, and store it.
    GetCaCertificate {
        #[command(flatten)]
        host: HostArgs,
        /// The SHA-256 fingerprint of the root shown on the server's Certificate authority
        /// page (repeatable: during a CA migration to a new root, both roots).
        #[arg(long)]
        fingerprint: Vec<String>,
        /// Trust the CA without asking (not recommended).
        #[arg(long)]
        yes: bool,
    },
    /// Host: make a key pair and CSR, and get a certificate.
    GetCertificate {
        #[command(flatten)]
        host: HostArgs,
        #[arg(long)]
        hostname: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The name of an environment variable that holds the token.
        #[arg(long)]
        token_env: Option<String>,
    },
    /// Host: renew the certificate with the same key (or --new-key).
    RenewCertificate {
        #[command(flatten)]
        host: HostArgs,
        /// Renew with a new key (host.key replaced), proved by the current one.
        #[arg(long)]
        new_key: bool,
    },
    /// Host: fetch the CRL, verify it against the stored CA, and store it.
    GetCrl {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Host: run the agent in the foreground: renew (with a new key) when the server's
    /// renewal window opens, refresh the CRL and the CA bundle; `agent install-unit`
    /// writes its systemd unit.
    #[command(args_conflicts_with_subcommands = true)]
    Agent {
        #[command(flatten)]
        flags: Option<AgentFlags>,
        #[command(subcommand)]
        command: Option<AgentCommand>,
    },
    /// Host: show the local certificate and whether the stored CRL revokes it.
    ListCertDetails {
        #[arg(long, env = "HOSTCA_HOST_DIR", default_value = "./hostca-host")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Write the systemd unit (contrib/hostca-agent.service) with these flags filled in.
    InstallUnit {
        #[command(flatten)]
        flags: AgentFlags,
        #[arg(long, default_value = "/etc/systemd/system/hostca-agent.service")]
        path: PathBuf,
    },
}

#[derive(clap::Args, Clone, Debug)]
struct AgentFlags {
    /// The hostca server, e.g. https://ca.example.com:8443
    #[arg(long, env = "HOSTCA_SERVER")]
    server: String,
    /// Where the host's files live: ca.pem, host.key, host.pem, crl.pem.
    #[arg(long, env = "HOSTCA_HOST_DIR", default_value = "./hostca-host")]
    dir: PathBuf,
    /// How often to ask the server for the renewal window (e.g. 30s, 10m, 1h).
    #[arg(long, default_value = "1h", value_parser = agent::parse_duration)]
    poll: std::time::Duration,
    /// Renew this long before the certificate expires (NetBackup's setting, e.g. 180d)
    /// instead of in the server's suggested window.
    #[arg(long, value_parser = agent::parse_duration)]
    renew_before: Option<std::time::Duration>,
    /// Run this command (sh -c) after a renewal; HOSTCA_CERT, HOSTCA_KEY, HOSTCA_CA and
    /// HOSTCA_SERIAL name the new files.
    #[arg(long)]
    exec: Option<String>,
    /// Send this signal (HUP, USR1, ...) to the process in --pid-file after a renewal.
    #[arg(long)]
    signal: Option<String>,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// The longest wait between retries after a failure (they start at 1s and double).
    #[arg(long, default_value = "1h", value_parser = agent::parse_duration)]
    backoff_max: std::time::Duration,
    /// How often to refresh the CRL and the CA bundle; default from the security level
    /// (very_high 1h, high 4h, medium 8h).
    #[arg(long, value_parser = agent::parse_duration)]
    crl_interval: Option<std::time::Duration>,
}

impl AgentFlags {
    fn options(self) -> agent::AgentOptions {
        agent::AgentOptions {
            server: self.server,
            dir: self.dir,
            poll: self.poll,
            renew_before: self.renew_before,
            exec: self.exec,
            signal: self.signal,
            pid_file: self.pid_file,
            backoff_max: self.backoff_max,
            crl_interval: self.crl_interval,
        }
    }
}

/// How the first start makes the CA, and where PKCS#11 keys are reached.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CaArgs {
    /// Subject of the root CA made on the first start, e.g. "CN=Example CA,O=Example"
    /// (the issuing CA's is derived from it).
    #[arg(long, env = "HOSTCA_CA_NAME")]
    pub ca_name: Option<String>,
    /// The CA key type on the first start: p256 (default), p384, rsa3072 or rsa4096.
    #[arg(long, env = "HOSTCA_CA_KEY_TYPE", value_name = "TYPE")]
    pub ca_key_type: Option<String>,
    /// Where the issuing CA's key lives: a PKCS#11 URI (RFC 7512), e.g.
    /// "pkcs11:token=hostca;object=issuing" (generated in the token, non-extractable, when
    /// it does not exist). Default: a key file in the data directory, sealed under token.key.
    #[arg(long, env = "HOSTCA_CA_KEY", value_name = "URI")]
    pub ca_key: Option<String>,
    /// The PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, env = "HOSTCA_PKCS11_MODULE", value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// A file holding the token's user PIN (or HOSTCA_PKCS11_PIN; never a flag value).
    #[arg(long, env = "HOSTCA_PKCS11_PIN_FILE", value_name = "FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl CaArgs {
    pub fn options(&self) -> crate::services::pki::CaOptions {
        crate::services::pki::CaOptions {
            name: self.ca_name.clone(),
            key_type: self.ca_key_type.clone(),
            issuing_key: self.ca_key.clone(),
            pkcs11_module: self.pkcs11_module.clone(),
            pkcs11_pin_file: self.pkcs11_pin_file.clone(),
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where the database, keys and CA live.
    #[arg(long, env = "HOSTCA_DATA_DIR", default_value = "./hostca-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "HOSTCA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// postgres://user@host/db for PostgreSQL; default the SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HOSTCA_WORKERS")]
    workers: Option<usize>,
    /// Largest number of database connections.
    #[arg(long, env = "HOSTCA_DB_POOL", default_value_t = 16)]
    db_pool: u32,
    #[command(flatten)]
    ca: CaArgs,
    /// Serve HTTPS with a certificate issued by hostca's own CA.
    #[arg(long, env = "HOSTCA_TLS")]
    tls: bool,
    /// A name (or address) for the TLS certificate; repeatable. Default: the host name and localhost.
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// Serve plain HTTP on a non-loopback address anyway.
    #[arg(long)]
    insecure_http: bool,
    /// Host certificates last this many minutes (1 to 1440) instead of the configured
    /// days: for renewal drills and tests of agents, never for production.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1440))]
    leaf_validity_minutes: Option<i64>,
    /// OCSP responses are good for this many hours (1 to 168; default 24). They are made
    /// again at half of it, so a relying party that caches them sees a revocation at most
    /// this long after it (a request with a nonce always gets the current status).
    #[arg(long, env = "HOSTCA_OCSP_VALIDITY_HOURS", value_parser = clap::value_parser!(u64).range(1..=168))]
    ocsp_validity_hours: Option<u64>,
    /// The base URL hosts reach this server at, written into certificates (CRL distribution
    /// point, CA issuers). Default: from --listen, or https://<first --tls-name>:<port>.
    #[arg(long, env = "HOSTCA_PUBLIC_URL")]
    public_url: Option<String>,
    /// Append every committed audit event, as a JSON line with its chain hash, to FILE
    /// (`-`: standard output, for a SIEM). Default: <data-dir>/audit.log.
    #[arg(long, env = "HOSTCA_AUDIT_LOG", value_name = "FILE")]
    audit_log: Option<String>,
    /// The address of a reverse proxy in front of hostca (repeatable, or comma-separated
    /// in the variable): only from these is X-Forwarded-For believed. Default: none.
    #[arg(
        long = "trusted-proxy",
        env = "HOSTCA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// A file holding the bearer token /metrics answers to (from any address). Default: no
    /// token.
    #[arg(long, env = "HOSTCA_METRICS_TOKEN_FILE", value_name = "FILE")]
    metrics_token_file: Option<PathBuf>,
    /// A network that may read /metrics without the token (repeatable, or comma-separated
    /// in the variable; `none` for no address). Default: 127.0.0.0/8 and ::1.
    #[arg(
        long = "metrics-allow",
        env = "HOSTCA_METRICS_ALLOW",
        value_delimiter = ','
    )]
    metrics_allow: Vec<String>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that no audit event was changed or removed outside hostca.
    Verify(StoreArgs),
    /// One page of the audit trail, newest first (admin API).
    List {
        #[command(flatten)]
        api: ApiConn,
        #[command(flatten)]
        filter: admin::AuditFilter,
        #[arg(long, default_value_t = 1)]
        page: i64,
    },
    /// The audit trail as CSV, the columns of the console's export (admin API).
    Export {
        #[command(flatten)]
        api: ApiConn,
        #[command(flatten)]
        filter: admin::AuditFilter,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Add a user. The password comes from --password-env, a prompt, or standard input.
    CreateUser {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        username: String,
        /// The user's role.
        #[arg(long, default_value = "viewer",
              value_parser = clap::builder::PossibleValuesParser::new(crate::models::kinds::Role::KEYS))]
        role: String,
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Set a user's password (they must change it at the next login) and enable them.
    ResetPassword {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_env: Option<String>,
    },
}

/// Where the server keeps its data, for commands that read it directly.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    #[arg(long, env = "HOSTCA_DATA_DIR", default_value = "./hostca-data")]
    data_dir: PathBuf,
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The append-only audit log: `hostca audit verify` compares it with the database;
    /// other commands append their events to it. Default: <data-dir>/audit.log.
    #[arg(long, env = "HOSTCA_AUDIT_LOG", value_name = "FILE")]
    audit_log: Option<String>,
}

/// An admin API command with the server and key it talks to.
#[derive(Args)]
struct Api<C: Subcommand> {
    #[command(flatten)]
    conn: ApiConn,
    #[command(subcommand)]
    command: C,
}

/// The server and key an admin API command talks to.
#[derive(Args)]
struct ApiConn {
    /// The hostca server, e.g. https://ca.example.com:8443
    #[arg(long, env = "HOSTCA_SERVER", global = true)]
    server: Option<String>,
    /// An API key from /account/api-keys.
    #[arg(long, env = "HOSTCA_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// A file holding the API key (the command line is visible to other users; a file
    /// with mode 0600 is not).
    #[arg(long, env = "HOSTCA_API_KEY_FILE", global = true)]
    api_key_file: Option<PathBuf>,
    /// The CA certificate to verify an https server (default: <dir>/ca.pem).
    #[arg(long, env = "HOSTCA_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    #[arg(
        long,
        env = "HOSTCA_HOST_DIR",
        default_value = "./hostca-host",
        global = true
    )]
    dir: PathBuf,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

impl<C: Subcommand> Api<C> {
    fn client(&self) -> CliResult<Client> {
        self.conn.client()
    }
}

impl ApiConn {
    fn client(&self) -> CliResult<Client> {
        let server = self
            .server
            .as_deref()
            .ok_or("give the server with --server or HOSTCA_SERVER")?;
        let key = match (&self.api_key_file, &self.api_key) {
            (Some(f), _) => std::fs::read_to_string(f)
                .map(|k| k.trim().to_string())
                .map_err(|e| format!("cannot read the API key file {}: {e}", f.display()))?,
            (None, Some(k)) => {
                // clap prefers the flag to the variable: a value that differs from the
                // variable's came from the command line.
                if std::env::var("HOSTCA_API_KEY").ok().as_ref() != Some(k) {
                    warn_secret_flag("--api-key", "HOSTCA_API_KEY", "--api-key-file");
                }
                k.clone()
            }
            (None, None) => {
                return Err(
                    "give an API key with HOSTCA_API_KEY, --api-key-file or --api-key".into(),
                )
            }
        };
        let ca = client::load_ca(self.ca_cert.as_deref(), &self.dir);
        Client::new(server, Some(key), ca.as_deref())
    }
}

/// A secret given as a flag is visible to every user of the machine (`ps`, /proc) and
/// stays in the shell's history: say so, and name the safer forms.
pub fn warn_secret_flag(flag: &str, env: &str, file_flag: &str) {
    eprintln!(
        "hostca: warning: {flag} puts a secret on the command line, where other users can read it (ps) and the shell history keeps it; use the environment variable {env} or {file_flag} FILE instead"
    );
}

#[derive(Args, Clone, Debug)]
struct HostArgs {
    /// The hostca server, e.g. https://ca.example.com:8443
    #[arg(long, env = "HOSTCA_SERVER")]
    server: String,
    /// Where the host's files live: ca.pem, host.key, host.pem, crl.pem.
    #[arg(long, env = "HOSTCA_HOST_DIR", default_value = "./hostca-host")]
    dir: PathBuf,
}

/// Every admin API route (method, path as in /api/v1/openapi.json) and the command that
/// calls it: a test keeps this, the OpenAPI document and clap's command tree in step.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/tokens", "token list"),
    ("post", "/api/v1/tokens", "token create"),
    ("post", "/api/v1/tokens/reissue", "token create"),
    ("post", "/api/v1/tokens/delete", "token delete"),
    ("post", "/api/v1/tokens/cleanup", "token cleanup"),
    ("get", "/api/v1/tokens/{name}", "token details"),
    ("delete", "/api/v1/tokens/{name}", "token delete"),
    ("post", "/api/v1/tokens/{name}/show", "token show"),
    ("get", "/api/v1/certificates", "cert list"),
    ("get", "/api/v1/certificates/{serial}", "cert show"),
    ("get", "/api/v1/certificates/{serial}", "cert download"),
    (
        "post",
        "/api/v1/certificates/{serial}/revoke",
        "cert revoke",
    ),
    ("get", "/api/v1/hosts", "host list"),
    ("post", "/api/v1/hosts", "host add"),
    ("post", "/api/v1/hosts/renew-all", "host renew-all"),
    ("get", "/api/v1/hosts/{host}", "host show"),
    ("post", "/api/v1/hosts/{host}/revoke", "host revoke"),
    (
        "post",
        "/api/v1/hosts/{host}/auto-reissue",
        "host auto-reissue",
    ),
    (
        "post",
        "/api/v1/hosts/{host}/acme-accounts/{account}/deactivate",
        "host deactivate-acme-account",
    ),
    ("post", "/api/v1/hosts/{host}/revoke", "cert revoke"),
    ("post", "/api/v1/hosts/{host}/mappings", "mapping add"),
    (
        "post",
        "/api/v1/hosts/{host}/mappings/{name}/approve",
        "mapping approve",
    ),
    (
        "post",
        "/api/v1/hosts/{host}/mappings/{name}/reject",
        "mapping reject",
    ),
    (
        "delete",
        "/api/v1/hosts/{host}/mappings/{name}",
        "mapping delete",
    ),
    ("get", "/api/v1/settings", "settings get"),
    ("put", "/api/v1/settings", "settings set"),
    ("get", "/api/v1/audit", "audit list"),
    ("get", "/api/v1/audit", "audit export"),
    ("get", "/api/v1/ca", "ca show"),
    (
        "post",
        "/api/v1/ca/migration/initiate",
        "ca migrate initiate",
    ),
    (
        "post",
        "/api/v1/ca/migration/activate",
        "ca migrate activate",
    ),
    (
        "post",
        "/api/v1/ca/migration/complete",
        "ca migrate complete",
    ),
    (
        "post",
        "/api/v1/ca/migration/decommission",
        "ca migrate decommission",
    ),
    (
        "post",
        "/api/v1/ca/migration/mark-renewal",
        "ca migrate mark-renewal",
    ),
    (
        "get",
        "/api/v1/ca/migration/pending-trust",
        "ca pending-trust",
    ),
    (
        "get",
        "/api/v1/ca/migration/pending-renewal",
        "ca pending-renewal",
    ),
];

/// clap's command tree, for the test that checks every command in [`ROUTES`] exists.
pub fn command_tree() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs the command line; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Audit(AuditCommand::Verify(args)) => return audit_verify(args),
        Command::Audit(AuditCommand::List { api, filter, page }) => api
            .client()
            .and_then(|c| admin::audit_list(&c, &filter, page, api.json)),
        Command::Audit(AuditCommand::Export { api, filter, out }) => api
            .client()
            .and_then(|c| admin::audit_export(&c, &filter, out.as_deref())),
        Command::Admin(cmd) => admin_users(cmd),
        Command::Backup {
            store,
            out,
            passphrase_env,
        } => backup(&store, &out, passphrase_env.as_deref()),
        Command::Restore {
            store,
            input,
            passphrase_env,
        } => restore(&store, &input, passphrase_env.as_deref()),
        Command::Token(api) => api
            .client()
            .and_then(|c| admin::token(&c, api.command, api.conn.json)),
        Command::Cert(api) => api
            .client()
            .and_then(|c| admin::cert(&c, api.command, api.conn.json)),
        Command::Host(api) => api
            .client()
            .and_then(|c| admin::host(&c, api.command, api.conn.json)),
        Command::Mapping(api) => api
            .client()
            .and_then(|c| admin::mapping(&c, api.command, api.conn.json)),
        Command::Settings(api) => api
            .client()
            .and_then(|c| admin::settings(&c, api.command, api.conn.json)),
        Command::Ca(api) => match api.command {
            admin::CaCommand::ExportRoot {
                store,
                ca,
                out,
                passphrase_env,
            } => export_root(&store, &ca, &out, passphrase_env.as_deref()),
            admin::CaCommand::RemoveRootKey {
                store,
                ca,
                exported,
                passphrase_env,
            } => remove_root_key(&store, &ca, &exported, passphrase_env.as_deref()),
            command => api
                .conn
                .client()
                .and_then(|c| admin::ca(&c, command, api.conn.json)),
        },
        Command::GetCaCertificate {
            host,
            fingerprint,
            yes,
        } => host::get_ca_certificate(&host.server, &host.dir, &fingerprint, yes),
        Command::GetCertificate {
            host,
            hostname,
            token,
            token_file,
            token_env,
        } => host::get_certificate(
            &host.server,
            &host.dir,
            &hostname,
            &host::TokenSource {
                token,
                token_file,
                token_env,
            },
        ),
        Command::RenewCertificate { host, new_key } => {
            host::renew_certificate(&host.server, &host.dir, new_key)
        }
        Command::GetCrl { host } => host::get_crl(&host.server, &host.dir),
        Command::ListCertDetails { dir, json } => host::list_cert_details(&dir, json),
        Command::Agent { flags, command } => match (command, flags) {
            (Some(AgentCommand::InstallUnit { flags, path }), _) => {
                agent::install_unit(&flags.options(), &path)
            }
            (None, Some(flags)) => agent::run(flags.options()),
            (None, None) => {
                Err("hostca agent needs --server (and --dir): see 'hostca agent --help'".into())
            }
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hostca: {e}");
            1
        }
    }
}

fn serve(args: ServeArgs) -> CliResult<()> {
    let mut config = Config::new(args.data_dir);
    config.listen = args.listen;
    config.database_url = args.database_url;
    config.workers = args.workers;
    config.pool_size = args.db_pool;
    config.ca = args.ca.options();
    config.tls = args.tls;
    config.tls_names = args.tls_names;
    config.insecure_http = args.insecure_http;
    config.public_url = args.public_url;
    config.audit_log = args.audit_log;
    config.trusted_proxies = args.trusted_proxies;
    if let Some(file) = &args.metrics_token_file {
        let token = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the metrics token file {}: {e}", file.display()))?;
        let token = token.trim();
        if token.len() < 16 {
            return Err(format!(
                "the metrics token in {} is shorter than 16 characters: use a long random one (openssl rand -hex 32)",
                file.display()
            ));
        }
        config.metrics_token = Some(token.to_string());
    }
    if !args.metrics_allow.is_empty() {
        config.metrics_allow = if args.metrics_allow.iter().any(|a| a.trim() == "none") {
            Vec::new()
        } else {
            args.metrics_allow
                .iter()
                .map(|a| a.parse())
                .collect::<Result<_, String>>()?
        };
    }
    config.leaf_validity_minutes = args.leaf_validity_minutes;
    config.ocsp_validity_hours = args.ocsp_validity_hours;
    config.admin_password = std::env::var("HOSTCA_ADMIN_PASSWORD").ok();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&config).map_err(|e| e.to_string())?;
        log::info!(
            "hostca listening on {} (data in {})",
            app.base_url(),
            config.data_dir.display()
        );
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })?;
    Ok(())
}

/// The database, with the data directory's audit key and sink open, for commands that
/// write to it.
fn open_store(args: &StoreArgs) -> CliResult<crate::db::Pool> {
    let pool = connect_store(args)?;
    let sink =
        crate::services::audit::SinkTarget::from_flag(&args.data_dir, args.audit_log.as_deref());
    crate::services::audit::open(&pool, &args.data_dir, &sink).map_err(|e| e.to_string())?;
    Ok(pool)
}

fn connect_store(args: &StoreArgs) -> CliResult<crate::db::Pool> {
    let mut config = Config::new(args.data_dir.clone());
    config.database_url = args.database_url.clone();
    let url = config.database_url();
    if crate::db::Backend::of(&url) == crate::db::Backend::Sqlite
        && !std::path::Path::new(&url).exists()
    {
        return Err(format!(
            "no database at {url}: pass --data-dir or --database-url"
        ));
    }
    crate::db::connect(&url, 2).map_err(|e| e.to_string())
}

/// Verifies the keyed chain and compares the database with the audit log. Exit 0: all
/// is well; 1: something was changed or removed (the ids are listed); 2: it could not be
/// checked.
fn audit_verify(args: StoreArgs) -> i32 {
    use crate::services::audit::{verify_report, SinkTarget};
    let sink = match SinkTarget::from_flag(&args.data_dir, args.audit_log.as_deref()) {
        SinkTarget::File(p) => p,
        SinkTarget::Stdout => {
            eprintln!(
                "hostca: --audit-log - is for the server; give the file your log collector wrote"
            );
            return 2;
        }
    };
    let explicit = args.audit_log.is_some();
    let result = connect_store(&args).and_then(|pool| {
        let key = crate::secrets::AuditKey::load(&args.data_dir).map_err(|e| e.to_string())?;
        let mut conn = crate::db::get(&pool).map_err(|e| e.to_string())?;
        let sink = if sink.exists() || explicit {
            Some(sink.as_path())
        } else {
            println!(
                "no audit log at {}: checking the chain only (removed last events cannot be seen without it)",
                sink.display()
            );
            None
        };
        verify_report(&mut conn, &key, sink).map_err(|e| e.to_string())
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hostca: {e}");
            return 2;
        }
    };
    let ids = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    if let Some(first) = report.unhashed.iter().chain(&report.breaks).min() {
        // The first line as before the keyed chain, for scripts that read it.
        println!(
            "audit chain BROKEN at event {first}: it or the event before it was changed or removed"
        );
    }
    if report.seal_broken {
        println!("SETTINGS CHANGED: the audit anchor or the end of the old chain was moved outside hostca");
    }
    if !report.edited.is_empty() {
        println!(
            "EDITED: events {} no longer match their hash or the audit log",
            ids(&report.edited)
        );
    }
    if !report.breaks.is_empty() {
        println!(
            "BROKEN CHAIN before events {}: the event before each was removed or changed",
            ids(&report.breaks)
        );
    }
    if !report.deleted.is_empty() {
        println!(
            "DELETED: events {} are in the audit log but not in the database",
            ids(&report.deleted)
        );
    }
    if !report.missing_from_sink.is_empty() {
        println!(
            "MISSING FROM THE AUDIT LOG: events {} are in the database but were never logged",
            ids(&report.missing_from_sink)
        );
    }
    if !report.unreadable_lines.is_empty() {
        println!(
            "UNREADABLE audit log lines: {}",
            report
                .unreadable_lines
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if report.ok() {
        match report.sink_events {
            Some(n) => println!(
                "audit chain OK: {} events verified with the audit key, and {n} match the audit log; none changed or removed",
                report.events
            ),
            None => println!(
                "audit chain OK: {} events verified with the audit key, none changed or removed",
                report.events
            ),
        }
        0
    } else {
        1
    }
}

fn backup(store: &StoreArgs, out: &std::path::Path, passphrase_env: Option<&str>) -> CliResult<()> {
    let pool = open_store(store)?;
    let passphrase = read_password(passphrase_env)?;
    let summary = crate::services::backup::backup(&pool, &store.data_dir, out, &passphrase)
        .map_err(|e| e.to_string())?;
    println!(
        "Backup written to {} ({summary}). Keep the passphrase apart from the file.",
        out.display()
    );
    Ok(())
}

/// The CAs of the installation at `store`, for commands beside the server.
fn open_pki(
    store: &StoreArgs,
    ca: &CaArgs,
) -> CliResult<(crate::db::Pool, crate::services::pki::PkiState)> {
    let pool = open_store(store)?;
    let wrap =
        crate::secrets::TokenKey::load_or_create(&store.data_dir).map_err(|e| e.to_string())?;
    let keys = crate::services::pki::KeyStore::new(&store.data_dir, wrap, &ca.options());
    let mut conn = crate::db::get(&pool).map_err(|e| e.to_string())?;
    let pki = crate::services::pki::load_existing(&mut conn, keys).map_err(|e| e.to_string())?;
    drop(conn);
    Ok((pool, pki))
}

fn export_root(
    store: &StoreArgs,
    ca: &CaArgs,
    out: &std::path::Path,
    passphrase_env: Option<&str>,
) -> CliResult<()> {
    let (pool, pki) = open_pki(store, ca)?;
    let passphrase = read_password(passphrase_env)?;
    let (sealed, subject) = crate::services::ca_migration::export_root(&pool, &pki, &passphrase)
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(out);
    crate::secrets::write_private_file(out, &sealed)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "The key of {subject} is in {} (sealed under the passphrase). Keep it and the passphrase apart, offline; then run 'hostca ca remove-root-key --exported {}'.",
        out.display(),
        out.display()
    );
    Ok(())
}

fn remove_root_key(
    store: &StoreArgs,
    ca: &CaArgs,
    exported: &std::path::Path,
    passphrase_env: Option<&str>,
) -> CliResult<()> {
    let (pool, pki) = open_pki(store, ca)?;
    let file =
        std::fs::read(exported).map_err(|e| format!("cannot read {}: {e}", exported.display()))?;
    let passphrase = read_password(passphrase_env)?;
    let summary = crate::services::ca_migration::remove_root_key(
        &pool,
        &pki,
        &crate::services::ca_migration::RootKeyFile { file, passphrase },
    )
    .map_err(|e| e.to_string())?;
    println!("{summary}. A running server stops using it within seconds.");
    Ok(())
}

fn restore(
    store: &StoreArgs,
    input: &std::path::Path,
    passphrase_env: Option<&str>,
) -> CliResult<()> {
    let mut config = Config::new(store.data_dir.clone());
    config.database_url = store.database_url.clone();
    let passphrase = read_password(passphrase_env)?;
    let summary = crate::services::backup::restore(
        input,
        &store.data_dir,
        &config.database_url(),
        &passphrase,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "{summary} into {}. Start the server on it with 'hostca serve --data-dir {}'.",
        store.data_dir.display(),
        store.data_dir.display()
    );
    Ok(())
}

pub(crate) fn read_password(env: Option<&str>) -> CliResult<String> {
    if let Some(var) = env {
        return std::env::var(var)
            .map_err(|_| format!("the environment variable {var} is not set"));
    }
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("New password: ").map_err(|e| e.to_string())?;
        let b = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the two passwords differ".into());
        }
        return Ok(a);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn admin_users(cmd: AdminCommand) -> CliResult<()> {
    let (store, username, role, password_env) = match &cmd {
        AdminCommand::CreateUser {
            store,
            username,
            role,
            password_env,
        } => (store, username, Some(role.clone()), password_env),
        AdminCommand::ResetPassword {
            store,
            username,
            password_env,
        } => (store, username, None, password_env),
    };
    let pool = open_store(store)?;
    let password = read_password(password_env.as_deref())?;
    crate::services::users::offline_set_user(&pool, username, role.as_deref(), &password)
        .map_err(|e| e.to_string())?;
    match role {
        Some(r) => println!("User {username} created with role {r}; they must change the password at first login."),
        None => println!("The password of {username} was reset and the account enabled; they must change it at the next login."),
    }
    Ok(())
}

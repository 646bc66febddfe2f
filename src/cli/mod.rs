//! The `hostca` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;

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
    /// Run the web console and the host API.
    Serve(ServeArgs),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that no audit event was changed or removed outside hostca.
    Verify(StoreArgs),
}

/// Where the server keeps its data, for commands that read it directly.
#[derive(clap::Args)]
struct StoreArgs {
    #[arg(long, env = "HOSTCA_DATA_DIR", default_value = "./hostca-data")]
    data_dir: PathBuf,
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
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
    /// Subject of the root CA made on the first start, e.g. "CN=Example CA,O=Example".
    #[arg(long, env = "HOSTCA_CA_NAME")]
    ca_name: Option<String>,
}

/// Runs the command line; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Audit(AuditCommand::Verify(args)) => audit_verify(args),
    }
}

fn serve(args: ServeArgs) -> i32 {
    let mut config = Config::new(args.data_dir);
    config.listen = args.listen;
    config.database_url = args.database_url;
    config.workers = args.workers;
    config.pool_size = args.db_pool;
    config.ca_name = args.ca_name;
    config.admin_password = std::env::var("HOSTCA_ADMIN_PASSWORD").ok();
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&config).map_err(|e| e.to_string())?;
        log::info!(
            "hostca listening on port {} (data in {})",
            app.port(),
            config.data_dir.display()
        );
        app.run_until_stopped().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hostca: {e}");
            1
        }
    }
}

fn audit_verify(args: StoreArgs) -> i32 {
    let mut config = Config::new(args.data_dir);
    config.database_url = args.database_url;
    let url = config.database_url();
    if crate::db::Backend::of(&url) == crate::db::Backend::Sqlite
        && !std::path::Path::new(&url).exists()
    {
        eprintln!("hostca: no database at {url}: pass --data-dir or --database-url");
        return 2;
    }
    let result = crate::db::connect(&url, 2).and_then(|pool| {
        crate::db::get(&pool).and_then(|mut c| crate::services::audit::verify_chain(&mut c))
    });
    match result {
        Ok(crate::services::audit::ChainStatus::Intact { events }) => {
            println!("audit chain OK: {events} events verified, none changed or removed");
            0
        }
        Ok(crate::services::audit::ChainStatus::Broken {
            at_id,
            events_checked,
        }) => {
            println!("audit chain BROKEN at event {at_id}: it or the event before it was changed or removed ({events_checked} events verified before it)");
            1
        }
        Err(e) => {
            eprintln!("hostca: {e}");
            2
        }
    }
}

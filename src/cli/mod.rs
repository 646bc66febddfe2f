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

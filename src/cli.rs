//! The command line: `serve` (the default), `worker`, `migrate`, `extract`, and the hidden
//! `sandbox` child used by the server itself.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::{
    config::Config,
    engines::{self, Engine, sandbox, text_layer},
    startup, telemetry,
};

/// Lector: multi-page PDFs to searchable text.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Web server and workers (the default).
    Serve,
    /// Workers only: for more machines sharing one Postgres database.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Extract the text of one PDF and print it (no database).
    Extract {
        /// The PDF.
        file: PathBuf,
        /// Print JSON (pages with their numbers and timings) instead of text.
        #[arg(long)]
        json: bool,
        /// The user password of an encrypted PDF.
        #[arg(long, env = "LECTOR_PDF_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Internal: the sandboxed parser process.
    #[command(hide = true)]
    Sandbox {
        /// `inspect` or `extract`.
        mode: String,
        /// The engine's name.
        #[arg(long, default_value = text_layer::ENGINE_NAME)]
        engine: String,
        /// The PDF.
        file: PathBuf,
        /// Address-space limit.
        #[arg(long)]
        memory_mb: u64,
        /// CPU-time limit.
        #[arg(long)]
        cpu_secs: u64,
    },
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Sandbox {
            mode,
            engine,
            file,
            memory_mb,
            cpu_secs,
        } => sandbox::run_child(&mode, &engine, &file, memory_mb, cpu_secs),
        Command::Extract {
            file,
            json,
            password,
        } => extract(&file, json, password.as_deref()),
        command => run_service(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lector: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_service(command: Command) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            Command::Migrate => {
                startup::connect(&config).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Worker => startup::run_workers_only(config, startup::shutdown_signal()).await,
            _ => {
                let listener = tokio::net::TcpListener::bind(config.bind).await?;
                startup::run(config, listener, startup::shutdown_signal()).await
            }
        }
    })
}

#[derive(Serialize)]
struct ExtractOutput {
    file: String,
    pages: Vec<engines::PageText>,
}

fn extract(file: &std::path::Path, json: bool, password: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let doc = text_layer::TextLayer.open(bytes, password)?;
    let pages = 1..=doc.inspection().pages;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        let mut all = Vec::new();
        engines::extract_pages(doc.as_ref(), pages, |page| {
            all.push(page);
            Ok(())
        })?;
        serde_json::to_writer_pretty(
            &mut out,
            &ExtractOutput {
                file: file.display().to_string(),
                pages: all,
            },
        )?;
        writeln!(out)?;
    } else {
        engines::extract_pages(doc.as_ref(), pages, |page| {
            if page.number > 1 {
                out.write_all(b"\x0c")?;
            }
            match &page.error {
                Some(error) => writeln!(out, "[page {}: {error}]", page.number),
                None => writeln!(out, "{}", page.text),
            }
        })?;
    }
    out.flush()?;
    Ok(())
}

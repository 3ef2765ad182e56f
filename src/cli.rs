//! The command line: `serve` (the default), `worker`, `migrate`, `extract`, `doctor`, and the hidden
//! `sandbox` child used by the server itself.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod batch;
mod engine;
mod users;

use crate::{
    config::Config,
    engines::{
        inspector,
        probe::{self, ProbeRequest},
        sandbox, text_layer,
    },
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
    /// Extract the text of PDFs (no database): one file's is printed; with `--out`, each
    /// file's goes to a file of its own (folders are read recursively).
    Extract {
        /// PDFs, and folders of PDFs.
        #[arg(required = true, value_name = "FILE_OR_DIR")]
        inputs: Vec<PathBuf>,
        /// Write `<name>.txt` (pages separated by form feeds) or `<name>.json` per PDF here,
        /// keeping the folders' layout.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Documents extracted at once (default: the cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// JSON (pages with their numbers and timings) instead of text.
        #[arg(long)]
        json: bool,
        /// The user password of an encrypted PDF.
        #[arg(long, env = "LECTOR_PDF_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// When to OCR pages: auto, off or force (default: LECTOR_OCR, else auto).
        #[arg(long)]
        ocr: Option<String>,
        /// OCR languages joined by + (default: LECTOR_OCR_LANGUAGES, else eng).
        #[arg(long)]
        ocr_languages: Option<String>,
    },
    /// Check the deployment's wiring and say what is wrong: database reachable, migrated and
    /// encrypted; S3 bucket, Textract, notices and queues; OCR; time limits; and the Elastic
    /// Beanstalk bundle's nginx limits against Lector's. Changes nothing.
    Doctor {
        /// The Elastic Beanstalk bundle to check (zip or directory; default: the current
        /// directory when it holds one, as on an instance).
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Accounts: `lector user add|password|sessions revoke|reset-link|list|delete`.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens: `lector token create EMAIL --name NAME` prints a new token.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Write the image OCR reads for one page (8-bit grey PGM): to see what Tesseract saw,
    /// or to time Tesseract alone on the same pixels.
    Render {
        /// The PDF.
        file: PathBuf,
        /// 1-based page number.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Resolution (default: LECTOR_OCR_DPI, else 300).
        #[arg(long)]
        dpi: Option<u32>,
        /// The PGM file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Internal: the sandboxed parser process.
    #[command(hide = true)]
    Sandbox {
        /// `extract` or `split` one file; `inspector`: check the files named on stdin, one
        /// JSON line each, until it closes; `probe`: confined as `extract` of the file, try
        /// what an exploit would and report what got through.
        mode: String,
        /// The engine's name.
        #[arg(long, default_value = text_layer::ENGINE_NAME)]
        engine: String,
        /// The PDF (not for `inspector`).
        file: Option<PathBuf>,
        /// Address-space limit.
        #[arg(long)]
        memory_mb: u64,
        /// CPU-time limit.
        #[arg(long)]
        cpu_secs: u64,
        /// `inspector`: the folder whose files it checks, and may read.
        #[arg(long)]
        uploads: Option<PathBuf>,
        /// `probe`: a file to open for writing.
        #[arg(long)]
        try_write: Vec<PathBuf>,
        /// `probe`: a file to read.
        #[arg(long)]
        try_read: Vec<PathBuf>,
        /// `probe`: a TCP address to connect to.
        #[arg(long)]
        try_connect: Option<std::net::SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Adds an account whatever `LECTOR_SIGNUP` says. Asks for the password on a terminal,
    /// reads it from standard input with `--password-stdin`, or else generates one and prints it.
    Add {
        /// The e-mail address to log in with.
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sets an account's password (asked on a terminal, or `--password-stdin`); every
    /// session of the account ends.
    Password {
        /// The account's e-mail.
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sessions: `lector user sessions revoke EMAIL` ends every session of an account.
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Prints a one-time link to set a new password (no e-mail is sent: pass it on).
    ResetLink {
        /// The account's e-mail.
        email: String,
        /// How long the link works.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
    },
    /// Lists the accounts with their documents, tokens and webhooks.
    List,
    /// Deletes an account with its documents (and their originals), tokens and webhooks.
    Delete {
        /// The account's e-mail.
        email: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsAction {
    /// Ends every session of the account, on every device.
    Revoke {
        /// The account's e-mail.
        email: String,
        /// Also revoke every API token of the account.
        #[arg(long)]
        tokens: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Creates an API token for an account and prints it (the only time it is shown).
    Create {
        /// The account's e-mail.
        email: String,
        /// What the token is for.
        #[arg(long, default_value = "command line")]
        name: String,
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
            uploads,
            try_write,
            try_read,
            try_connect,
        } => match (mode.as_str(), file, uploads) {
            ("inspector", _, Some(uploads)) => inspector::serve(&uploads, memory_mb, cpu_secs),
            ("inspector", _, None) => Err(anyhow::anyhow!("sandbox inspector needs --uploads")),
            ("batch", _, _) => sandbox::run_batch_child(&engine, memory_mb, cpu_secs),
            ("extract" | "split", Some(file), _) => {
                sandbox::run_child(&mode, &engine, &file, memory_mb, cpu_secs)
            }
            ("probe", Some(file), _) => {
                let request = ProbeRequest {
                    file,
                    try_write,
                    try_read,
                    try_connect,
                };
                probe::run(&request, memory_mb, cpu_secs)
            }
            ("extract" | "split" | "probe", None, _) => {
                Err(anyhow::anyhow!("sandbox {mode} needs a FILE"))
            }
            _ => Err(anyhow::anyhow!("unknown sandbox mode {mode:?}")),
        },
        Command::Extract {
            inputs,
            out,
            jobs,
            json,
            password,
            ocr,
            ocr_languages,
        } => {
            let settings = engine::ExtractSettings::new(json, password, ocr, ocr_languages);
            match (inputs.as_slice(), out) {
                ([file], None) if !file.is_dir() => settings.and_then(|s| engine::extract(file, s)),
                (_, Some(out)) => settings.and_then(|s| batch::extract(&inputs, &out, jobs, s)),
                (_, None) => Err(anyhow::anyhow!(
                    "a folder or more than one PDF needs --out DIR to write the text to"
                )),
            }
        }
        Command::Render {
            file,
            page,
            dpi,
            out,
        } => engine::render(&file, page, dpi, &out),
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
    let answers_on_stdout = matches!(
        command,
        Command::User { .. } | Command::Token { .. } | Command::Doctor { .. }
    );
    telemetry::init(config.log_format, answers_on_stdout);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            Command::Migrate => {
                startup::migrate(&config).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Worker => startup::run_workers_only(config, startup::shutdown_signal()).await,
            Command::Doctor { bundle } => doctor(&config, bundle).await,
            Command::User { action } => match action {
                UserAction::Add {
                    email,
                    password_stdin,
                } => users::add(&config, &email, password_stdin).await,
                UserAction::Password {
                    email,
                    password_stdin,
                } => users::set_password(&config, &email, password_stdin).await,
                UserAction::Sessions {
                    action: SessionsAction::Revoke { email, tokens },
                } => users::end_sessions(&config, &email, tokens).await,
                UserAction::ResetLink { email, minutes } => {
                    users::reset_link(&config, &email, minutes).await
                }
                UserAction::List => users::list(&config).await,
                UserAction::Delete { email, yes } => users::delete(&config, &email, yes).await,
            },
            Command::Token {
                action: TokenAction::Create { email, name },
            } => users::create_token(&config, &email, &name).await,
            _ => {
                let listener = tokio::net::TcpListener::bind(config.bind).await?;
                startup::run(config, listener, startup::shutdown_signal()).await
            }
        }
    })
}

/// `lector doctor`: the report on stdout; fails when it found a problem.
async fn doctor(config: &Config, bundle: Option<PathBuf>) -> anyhow::Result<()> {
    // On an instance the current directory is the unpacked bundle; a source checkout (no
    // binary at its top) is not.
    let bundle = bundle.or_else(|| {
        let here = std::path::Path::new(".");
        (here.join(".platform").is_dir() && here.join("lector").is_file()).then(|| here.to_owned())
    });
    let report = crate::doctor::examine(config, bundle.as_deref()).await;
    print!("{report}");
    match report.problems() {
        0 => Ok(()),
        1 => anyhow::bail!("1 problem found"),
        n => anyhow::bail!("{n} problems found"),
    }
}

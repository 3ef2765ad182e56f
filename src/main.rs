//! The `lector` binary: parse the command line and hand over to [`lector::cli`].

fn main() -> std::process::ExitCode {
    lector::cli::main()
}

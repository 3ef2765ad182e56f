//! The `lector` binary: parse the command line and hand over to [`lector::cli`].

/// mimalloc instead of glibc's malloc: parsing a PDF allocates and frees many small objects.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lector::cli::main()
}

//! `lector extract` and `lector render`: the engine on one file, no server and no database
//! (handy, scriptable and what the benchmarks time).

use serde::Serialize;

use crate::{
    config::Config,
    domain::ocr::{OcrMode, parse_languages},
    engines::{
        self, Sandbox,
        ocr::{OcrAvailability, Rasteriser},
        sandbox::{SandboxMessage, SandboxRequest},
        text_layer,
    },
};

/// What `lector extract --json` prints or writes for one PDF.
#[derive(Serialize)]
pub(super) struct ExtractOutput {
    pub(super) file: String,
    pub(super) pages: Vec<engines::PageText>,
}

/// How `lector extract` reads PDFs: its options over the configuration.
pub(super) struct ExtractSettings {
    pub(super) config: Config,
    pub(super) json: bool,
    pub(super) request: SandboxRequest,
}

impl ExtractSettings {
    /// The configuration, with `--ocr`, `--ocr-languages` and `--password` applied.
    pub(super) fn new(
        json: bool,
        password: Option<String>,
        ocr: Option<String>,
        ocr_languages: Option<String>,
    ) -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        let mut settings = config.ocr.clone();
        if let Some(raw) = ocr {
            settings.mode = OcrMode::parse(&raw)
                .ok_or_else(|| anyhow::anyhow!("--ocr {raw:?} must be auto, off or force"))?;
        }
        if let Some(raw) = ocr_languages {
            let installed = OcrAvailability::detect();
            settings.languages = parse_languages(&raw, installed.languages())
                .map_err(|reason| anyhow::anyhow!("--ocr-languages: {reason}"))?;
        }
        let request = SandboxRequest {
            password,
            ocr: settings,
            ..SandboxRequest::default()
        };
        Ok(ExtractSettings {
            config,
            json,
            request,
        })
    }

    /// The most one document may take: the deadline of one at the page limit.
    pub(super) fn document_limit(&self) -> std::time::Duration {
        (self.config).extract_cpu_limit(self.config.max_pages, self.request.ocr.mode)
    }

    /// Sandboxed children as the configuration sets them up.
    pub(super) fn sandbox(&self) -> anyhow::Result<Sandbox> {
        Ok(Sandbox::new(
            self.config.sandbox_exe.clone(),
            self.config.sandbox_memory_mb,
        )?)
    }
}

/// One page as `lector extract` prints it: its text, or why it has none, after a form feed
/// from the page before.
pub(super) fn write_page(
    out: &mut impl std::io::Write,
    page: &engines::PageText,
) -> std::io::Result<()> {
    if page.number > 1 {
        out.write_all(b"\x0c")?;
    }
    match &page.error {
        Some(error) => writeln!(out, "[page {}: {error}]", page.number),
        None => writeln!(out, "{}", page.text),
    }
}

/// `lector extract FILE`: the same sandboxed, page-by-page extraction (OCR included) as the
/// service, printed instead of stored.
pub(super) fn extract(file: &std::path::Path, settings: ExtractSettings) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::metadata(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let sandbox = settings.sandbox()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut all = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = settings.json;
    runtime.block_on(async {
        let cpu_limit = settings.document_limit();
        let mut run = sandbox
            .extract(text_layer::ENGINE_NAME, file, &settings.request, cpu_limit)
            .await?;
        while let Some(message) = run.next_message().await? {
            match message {
                SandboxMessage::Refused(reason) => anyhow::bail!("{reason}"),
                SandboxMessage::Page(page) if json => all.push(page),
                SandboxMessage::Page(page) => write_page(&mut out, &page)?,
                _ => {}
            }
        }
        Ok(())
    })?;
    if json {
        serde_json::to_writer_pretty(
            &mut out,
            &ExtractOutput {
                file: file.display().to_string(),
                pages: all,
            },
        )?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// `lector render`: the page image OCR reads, as a PGM file.
pub(super) fn render(
    file: &std::path::Path,
    page: u32,
    dpi: Option<u32>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let password = std::env::var("LECTOR_PDF_PASSWORD").ok();
    let rasteriser =
        Rasteriser::open(file, password.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let image = rasteriser
        .render(page, dpi.unwrap_or(config.ocr.dpi), config.ocr.max_pixels)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pgm = format!("P5\n{} {}\n255\n", image.width, image.height).into_bytes();
    pgm.extend_from_slice(&image.pixels);
    std::fs::write(out, pgm).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    println!(
        "{}: {}x{} at {} dpi",
        out.display(),
        image.width,
        image.height,
        image.dpi
    );
    Ok(())
}

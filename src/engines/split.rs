//! Copies some pages of a PDF into a new, smaller PDF: what the hybrid engine sends to
//! Textract, so only the pages that need it are paid for. Runs in the sandbox child.

use std::io::Write;

/// Writes `pages` (1-based, in order) of the PDF `bytes` to `out`; returns how many were
/// written. The error is for the user.
pub fn split(bytes: &[u8], pages: &[u32], out: impl Write) -> Result<u32, String> {
    let mut document = lopdf::Document::load_mem(bytes)
        .map_err(|e| format!("the pages could not be copied: {e}"))?;
    if document.is_encrypted() {
        return Err("the pages of an encrypted PDF are not copied".into());
    }
    let all: Vec<u32> = document.get_pages().keys().copied().collect();
    if let Some(missing) = pages.iter().find(|n| !all.contains(n)) {
        return Err(format!("the PDF has no page {missing}"));
    }
    let unwanted: Vec<u32> = all.into_iter().filter(|n| !pages.contains(n)).collect();
    document.delete_pages(&unwanted);
    document.prune_objects();
    let mut out = std::io::BufWriter::new(out);
    document
        .save_to(&mut out)
        .map_err(std::io::Error::other)
        .and_then(|()| out.flush())
        .map_err(|e| format!("the pages could not be written: {e}"))?;
    Ok(pages.len() as u32)
}

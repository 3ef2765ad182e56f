//! Rules for uploaded files that need no I/O: the PDF signature and safe file names.

/// PDF readers accept the `%PDF-` signature anywhere in the first 1024 bytes.
const HEADER_WINDOW: usize = 1024;

/// True when `head` (the first bytes of a file) carries the `%PDF-` signature.
pub fn has_pdf_signature(head: &[u8]) -> bool {
    let window = &head[..head.len().min(HEADER_WINDOW)];
    window.windows(5).any(|w| w == b"%PDF-")
}

/// The user's file name reduced to something safe to show and to put in a
/// `Content-Disposition` header: no path, no control characters, bounded length.
pub fn clean_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    let mut name: String = trimmed.chars().take(200).collect();
    if name.is_empty() {
        name = "document.pdf".into();
    }
    name
}

/// An ASCII-only version of a file name for the legacy `filename=` parameter.
pub fn ascii_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_may_follow_a_little_junk() {
        assert!(has_pdf_signature(b"%PDF-1.7\n"));
        assert!(has_pdf_signature(b"\xef\xbb\xbf%PDF-1.4"));
        assert!(!has_pdf_signature(b"hello, I am not a PDF"));
        assert!(!has_pdf_signature(b""));
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(clean_file_name("a\r\nb\".pdf"), "ab'.pdf");
        assert_eq!(clean_file_name(""), "document.pdf");
        assert_eq!(clean_file_name("..."), "document.pdf");
        assert_eq!(clean_file_name(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn ascii_names_replace_everything_else() {
        assert_eq!(ascii_file_name("résumé 2024.pdf"), "r_sum_ 2024.pdf");
    }
}

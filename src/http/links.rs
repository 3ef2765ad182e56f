//! Addresses of Lector's own pages that answers link to.

/// The document page opened at page `number` with the hits of `q` highlighted: where
/// every search result links to, from the web UI and the API.
pub fn page_link(document_id: &str, q: &str, number: i32) -> String {
    let query = serde_urlencoded::to_string([("q", q)]).unwrap_or_default();
    format!("/documents/{document_id}?{query}#page-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_link_carries_the_query_escaped_and_the_page_as_anchor() {
        assert_eq!(page_link("d1", "a&b", 3), "/documents/d1?q=a%26b#page-3");
    }
}

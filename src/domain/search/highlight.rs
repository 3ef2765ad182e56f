//! Text as a database highlighted it, kept as plain fragments so every rendering escapes
//! first and marks after.

use super::{HIT_END, HIT_START};

/// A stretch of text, either a hit or the text around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The text, not escaped.
    pub text: String,
    /// True when the query matched it.
    pub hit: bool,
}

/// Text with its hits marked, as a database highlighted it (between [`HIT_START`] and
/// [`HIT_END`]). Kept as plain fragments so that every rendering escapes the text first and
/// only then adds its own marks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Highlighted(pub Vec<Fragment>);

impl Highlighted {
    /// Splits `marked` at the hit markers. A marker out of place (an unclosed hit) cannot
    /// produce anything but text and hits.
    pub fn parse(marked: &str) -> Self {
        let mut fragments: Vec<Fragment> = Vec::new();
        let mut current = String::new();
        let mut hit = false;
        let mut flush = |text: &mut String, hit: bool| {
            if !text.is_empty() {
                fragments.push(Fragment {
                    text: std::mem::take(text),
                    hit,
                });
            }
        };
        for c in marked.chars() {
            match c {
                HIT_START => {
                    flush(&mut current, hit);
                    hit = true;
                }
                HIT_END => {
                    flush(&mut current, hit);
                    hit = false;
                }
                c => current.push(c),
            }
        }
        flush(&mut current, hit);
        Highlighted(fragments)
    }

    /// The text without marks.
    pub fn plain(&self) -> String {
        self.0.iter().map(|f| f.text.as_str()).collect()
    }

    /// HTML: the text escaped, hits in `<mark>`.
    pub fn to_html(&self) -> String {
        let mut html = String::new();
        for fragment in &self.0 {
            if fragment.hit {
                html.push_str("<mark>");
            }
            escape_html_into(&fragment.text, &mut html);
            if fragment.hit {
                html.push_str("</mark>");
            }
        }
        html
    }
}

fn escape_html_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlighted_text_is_escaped_before_it_is_marked() {
        let marked = format!("<b>{HIT_START}cat{HIT_END} & \"dog\"</b>");
        let highlighted = Highlighted::parse(&marked);
        assert_eq!(
            highlighted.to_html(),
            "&lt;b&gt;<mark>cat</mark> &amp; &quot;dog&quot;&lt;/b&gt;"
        );
        assert_eq!(highlighted.plain(), "<b>cat & \"dog\"</b>");
    }

    #[test]
    fn stray_markers_cannot_unbalance_the_html() {
        let marked = format!("{HIT_END}a{HIT_START}{HIT_START}<i>b");
        assert_eq!(
            Highlighted::parse(&marked).to_html(),
            "a<mark>&lt;i&gt;b</mark>"
        );
        assert_eq!(Highlighted::parse("plain").to_html(), "plain");
    }
}

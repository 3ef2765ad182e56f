//! Search queries: the query language people type (Postgres' `websearch_to_tsquery` syntax:
//! words, "phrases", -exclusions, `or`), parsed once here so that both database backends
//! answer the same query the same way, and the highlighted text they send back.

use chrono::{DateTime, Utc};

use super::DocumentStatus;

mod highlight;

pub use highlight::{Fragment, Highlighted};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most words and phrases in one query.
pub const MAX_TERMS: usize = 32;

/// Marks the start of a hit in text the database highlighted. A Unicode noncharacter: set
/// aside for a program's internal use, so it does not occur in extracted text.
pub const HIT_START: char = '\u{FDD0}';
/// Marks the end of a hit.
pub const HIT_END: char = '\u{FDD1}';

/// Postgres' English stop words (`english.stop`): its parser drops them from queries and
/// documents; the SQLite index keeps them, so they are dropped from queries here for both.
const STOP_WORDS: &str = "\
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself \
    she her hers herself it its itself they them their theirs themselves what which who whom \
    this that these those am is are was were be been being have has had having do does did \
    doing a an the and but if or because as until while of at by for with about against \
    between into through during before after above below to from up down in out on off over \
    under again further then once here there when where why how all any both each few more \
    most other some such no nor not only own same so than too very s t can will just don \
    should now";

/// A word (one entry) or a phrase (several, in order), lower-cased.
pub type Terms = Vec<String>;

/// One condition every match must meet: one of `alternatives` occurs (or, when `excluded`,
/// the one alternative does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Words or phrases joined by `or`.
    pub alternatives: Vec<Terms>,
    /// `-word`: pages containing it are left out.
    pub excluded: bool,
}

/// A parsed query: every clause must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// What was typed, trimmed.
    pub text: String,
    /// The conditions, in the order typed.
    pub clauses: Vec<Clause>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nothing typed.
    #[error("type something to search for")]
    Empty,
    /// Over [`MAX_QUERY_CHARS`].
    #[error("the search is too long: at most {MAX_QUERY_CHARS} characters")]
    TooLong,
    /// Over [`MAX_TERMS`].
    #[error("the search has too many words: at most {MAX_TERMS}")]
    TooManyTerms,
    /// Only exclusions: there is nothing to look for.
    #[error("the search has only excluded words (-word): add a word to look for")]
    OnlyExclusions,
    /// `a or -b`: an exclusion cannot be one side of `or`.
    #[error("an excluded word (-{0}) cannot be one side of \"or\"")]
    ExclusionInOr(String),
}

/// One raw item of the query as typed, before stop words are dropped.
enum Item {
    Word(String),
    Phrase(String),
    Or,
}

impl SearchQuery {
    /// Parses `input`. A query of common words only (`the`, `to be`) parses to no clauses:
    /// it matches nothing, on both backends.
    pub fn parse(input: &str) -> Result<Self, QueryError> {
        // A control character (a NUL above all) is no part of a word, and would end a full-text
        // query early on SQLite and be refused by Postgres: it separates words like a space.
        let spaced: String = input
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let text = spaced.trim();
        if text.is_empty() {
            return Err(QueryError::Empty);
        }
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let mut clauses: Vec<Clause> = Vec::new();
        let mut join_next = false;
        let mut terms_seen = 0;
        for (item, excluded) in scan(text) {
            let raw = match item {
                Item::Or => {
                    join_next = clauses.last().is_some();
                    continue;
                }
                Item::Word(raw) | Item::Phrase(raw) => raw,
            };
            let Some(terms) = terms_of(&raw) else {
                // Only common words or punctuation: as if not typed (Postgres does the same).
                continue;
            };
            terms_seen += 1;
            if terms_seen > MAX_TERMS {
                return Err(QueryError::TooManyTerms);
            }
            let joined = std::mem::take(&mut join_next);
            match clauses.last_mut() {
                Some(previous) if joined => {
                    if excluded || previous.excluded {
                        let word = if excluded {
                            terms.join(" ")
                        } else {
                            previous.alternatives[0].join(" ")
                        };
                        return Err(QueryError::ExclusionInOr(word));
                    }
                    previous.alternatives.push(terms);
                }
                _ => clauses.push(Clause {
                    alternatives: vec![terms],
                    excluded,
                }),
            }
        }
        if !clauses.is_empty() && clauses.iter().all(|c| c.excluded) {
            return Err(QueryError::OnlyExclusions);
        }
        Ok(SearchQuery {
            text: text.to_owned(),
            clauses,
        })
    }

    /// True when nothing is left to look for (only common words were typed).
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The phrases every match must contain: not excluded, not one side of `or`.
    pub fn required_phrases(&self) -> impl Iterator<Item = &Terms> {
        self.clauses.iter().filter(|c| !c.excluded).filter_map(|c| {
            match c.alternatives.as_slice() {
                [terms] if terms.len() > 1 => Some(terms),
                _ => None,
            }
        })
    }
}

/// Splits the typed text into words, phrases and `or`, each with whether a `-` excludes it.
fn scan(text: &str) -> Vec<(Item, bool)> {
    let mut items = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut excluded = false;
        if c == '-' {
            chars.next();
            excluded = true;
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let phrase: String = chars.by_ref().take_while(|&c| c != '"').collect();
            items.push((Item::Phrase(phrase), excluded));
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '"' {
                break;
            }
            word.push(c);
            chars.next();
        }
        if !excluded && word.eq_ignore_ascii_case("or") {
            items.push((Item::Or, false));
        } else {
            items.push((Item::Word(word), excluded));
        }
    }
    items
}

/// The words of `raw` (a word, or a phrase's words), lower-cased, as typed otherwise: each
/// backend splits a word such as `e-mail` or `3.14` the way it split the indexed text.
/// Words of only common words or punctuation are left out at either end (inside a phrase
/// they hold their place). None when no word is left.
fn terms_of(raw: &str) -> Option<Terms> {
    let words: Vec<String> = raw
        .split_whitespace()
        .map(|w| w.trim_start_matches('-').to_lowercase())
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let first = words.iter().position(|w| !is_common(w))?;
    let last = words.iter().rposition(|w| !is_common(w))?;
    Some(words[first..=last].to_vec())
}

/// True when every run of letters and digits in `word` is a stop word (`don't`, `the`).
fn is_common(word: &str) -> bool {
    word.split(|c: char| !c.is_alphanumeric())
        .filter(|piece| !piece.is_empty())
        .all(is_stop_word)
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.split_ascii_whitespace().any(|stop| stop == word)
}

/// How to order matching documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SearchSort {
    /// Best-matching page first.
    #[default]
    Relevance,
    /// Newest upload first.
    Newest,
}

impl SearchSort {
    /// Parses `relevance` or `date`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "relevance" => Some(Self::Relevance),
            "date" => Some(Self::Newest),
            _ => None,
        }
    }

    /// The name used in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relevance => "relevance",
            Self::Newest => "date",
        }
    }
}

/// Which documents a search looks in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilters {
    /// Only documents in this state.
    pub status: Option<DocumentStatus>,
    /// Only documents read by this engine.
    pub engine: Option<super::Engine>,
    /// Uploaded at or after this instant.
    pub uploaded_from: Option<DateTime<Utc>>,
    /// Uploaded before this instant.
    pub uploaded_before: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Terms {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    fn clause(alternatives: &[&[&str]], excluded: bool) -> Clause {
        Clause {
            alternatives: alternatives.iter().map(|a| words(a)).collect(),
            excluded,
        }
    }

    #[test]
    fn words_phrases_exclusions_and_or() {
        let query = SearchQuery::parse(r#"Invoice "due date" -draft paid or settled"#).unwrap();
        assert_eq!(
            query.clauses,
            vec![
                clause(&[&["invoice"]], false),
                clause(&[&["due", "date"]], false),
                clause(&[&["draft"]], true),
                clause(&[&["paid"], &["settled"]], false),
            ]
        );
    }

    #[test]
    fn common_words_are_dropped_but_hold_their_place_inside_a_phrase() {
        let query = SearchQuery::parse(r#"the cat "the end of the line""#).unwrap();
        assert_eq!(
            query.clauses,
            vec![
                clause(&[&["cat"]], false),
                clause(&[&["end", "of", "the", "line"]], false)
            ]
        );
        assert!(SearchQuery::parse("to be or not to be").unwrap().is_empty());
    }

    #[test]
    fn words_keep_their_punctuation_for_each_backend_to_split() {
        let query = SearchQuery::parse("E-mail 3.14 don't <script>alert(1)</script> &").unwrap();
        assert_eq!(
            query.clauses,
            vec![
                clause(&[&["e-mail"]], false),
                clause(&[&["3.14"]], false),
                clause(&[&["<script>alert(1)</script>"]], false),
            ]
        );
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(SearchQuery::parse("   "), Err(QueryError::Empty));
        assert_eq!(
            SearchQuery::parse(&"x".repeat(MAX_QUERY_CHARS + 1)),
            Err(QueryError::TooLong)
        );
        assert_eq!(
            SearchQuery::parse(&"word ".repeat(MAX_TERMS + 1)),
            Err(QueryError::TooManyTerms)
        );
        assert_eq!(
            SearchQuery::parse("-draft -old"),
            Err(QueryError::OnlyExclusions)
        );
        assert_eq!(
            SearchQuery::parse("paid or -draft"),
            Err(QueryError::ExclusionInOr("draft".into()))
        );
        assert_eq!(
            SearchQuery::parse("-draft or paid"),
            Err(QueryError::ExclusionInOr("draft".into()))
        );
    }

    #[test]
    fn a_leading_or_and_an_unclosed_quote_are_read_as_typed() {
        let query = SearchQuery::parse(r#"or cat "big dog"#).unwrap();
        assert_eq!(
            query.clauses,
            vec![
                clause(&[&["cat"]], false),
                clause(&[&["big", "dog"]], false)
            ]
        );
    }

    #[test]
    fn sorts_parse_from_their_url_names() {
        for sort in [SearchSort::Relevance, SearchSort::Newest] {
            assert_eq!(SearchSort::parse(sort.as_str()), Some(sort));
        }
        assert_eq!(SearchSort::parse("size"), None);
    }
}

//! The ids of Lector's records, one type each, so a webhook's id cannot be passed where a
//! document's is meant. All are UUIDv7 strings (they sort by creation time); one that comes
//! from outside — a URL path, a form — is taken as given and simply finds no record when it
//! is not one of ours, so a malformed id is a 404 like any unknown one.
//!
//! One generic [`Id`] tagged with what it names, rather than four copies of the same newtype:
//! the storage layer gives all of them their database encoding at once.

use std::{cmp::Ordering, fmt, hash::Hash, marker::PhantomData};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an [`Id`] names; its name is how the id shows in `Debug` output.
pub trait IdKind {
    /// The id type's name, e.g. `DocumentId`.
    const NAME: &'static str;
}

/// The id of a record of kind `K`: the UUIDv7 string, serialized as the bare string.
pub struct Id<K> {
    id: String,
    // `fn() -> K` keeps the id Send, Sync and Copy-free whatever K is (K is never stored).
    kind: PhantomData<fn() -> K>,
}

/// Marks a document's id (also its job's, pages' and original's).
pub enum OfDocument {}
/// Marks an account's id.
pub enum OfUser {}
/// Marks a registered webhook's id.
pub enum OfWebhook {}
/// Marks an API token's id (not its secret).
pub enum OfToken {}

impl IdKind for OfDocument {
    const NAME: &'static str = "DocumentId";
}
impl IdKind for OfUser {
    const NAME: &'static str = "UserId";
}
impl IdKind for OfWebhook {
    const NAME: &'static str = "WebhookId";
}
impl IdKind for OfToken {
    const NAME: &'static str = "TokenId";
}

/// A document (and its job, pages and original).
pub type DocumentId = Id<OfDocument>;
/// An account.
pub type UserId = Id<OfUser>;
/// A registered webhook.
pub type WebhookId = Id<OfWebhook>;
/// An API token.
pub type TokenId = Id<OfToken>;

impl<K> Id<K> {
    /// A new id, later than every id made before it.
    pub fn new() -> Self {
        Self::from(uuid::Uuid::now_v7().to_string())
    }

    /// The id as stored and as shown in URLs.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl<K> Default for Id<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> From<String> for Id<K> {
    fn from(id: String) -> Self {
        Id {
            id,
            kind: PhantomData,
        }
    }
}

impl<K> From<&str> for Id<K> {
    fn from(id: &str) -> Self {
        Self::from(id.to_owned())
    }
}

impl<K> From<Id<K>> for String {
    fn from(id: Id<K>) -> Self {
        id.id
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Self::from(self.id.clone())
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialEq<str> for Id<K> {
    fn eq(&self, other: &str) -> bool {
        self.id == other
    }
}

impl<K> PartialEq<&str> for Id<K> {
    fn eq(&self, other: &&str) -> bool {
        self.id == *other
    }
}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}

impl<K> Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(K::NAME).field(&self.id).finish()
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl<K> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.id.serialize(serializer)
    }
}

impl<'de, K> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_strings_in_json_and_new_ones_sort_later() {
        let first = DocumentId::new();
        let second = DocumentId::new();
        assert!(first < second, "UUIDv7 sorts by creation time");
        assert_eq!(
            serde_json::to_value(&first).unwrap(),
            serde_json::json!(first.as_str())
        );
        let parsed: WebhookId = serde_json::from_str("\"not-a-uuid\"").unwrap();
        assert_eq!(parsed, "not-a-uuid", "taken as given: it finds nothing");
        assert_eq!(String::from(parsed.clone()), "not-a-uuid");
        assert_eq!(parsed.to_string(), "not-a-uuid");
        assert_eq!(format!("{parsed:?}"), "WebhookId(\"not-a-uuid\")");
    }
}

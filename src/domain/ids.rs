//! The ids of Lector's records, one type each, so a webhook's id cannot be passed where a
//! document's is meant. All are UUIDv7 strings (they sort by creation time); one that comes
//! from outside — a URL path, a form — is taken as given and simply finds no record when it
//! is not one of ours, so a malformed id is a 404 like any unknown one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares an id type: a string newtype that serializes as the bare string.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new id, later than every id made before it.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// The id as stored and as shown in URLs.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A document (and its job, pages and original).
    DocumentId
);
id_type!(
    /// An account.
    UserId
);
id_type!(
    /// A registered webhook.
    WebhookId
);
id_type!(
    /// An API token (its id, not its secret).
    TokenId
);

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
        assert_eq!(
            parsed.as_str(),
            "not-a-uuid",
            "taken as given: it finds nothing"
        );
        assert_eq!(String::from(parsed.clone()), "not-a-uuid");
        assert_eq!(parsed.to_string(), "not-a-uuid");
    }
}

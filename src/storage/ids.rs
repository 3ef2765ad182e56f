//! The domain's ids as database values: bound and read as text, like the `text` columns
//! they live in. A row's id is ours, so reading one back needs no check.

use sqlx::{Database, Decode, Encode, Type, encode::IsNull, error::BoxDynError};

use crate::domain::{DocumentId, TokenId, UserId, WebhookId};

/// Gives each id type the text column's database type, encoding and decoding.
macro_rules! stored_as_text {
    ($($id:ty),+) => {$(
        impl<DB: Database> Type<DB> for $id
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $id
        where
            String: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, DB>>::encode(self.as_str().to_owned(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $id
        where
            String: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self::from(<String as Decode<'r, DB>>::decode(value)?))
            }
        }
    )+};
}

stored_as_text!(DocumentId, UserId, WebhookId, TokenId);

-- Accounts, API tokens (only their SHA-256 is kept), and document ownership. Documents from
-- before accounts have no owner until the first account is created, which takes them over
-- (done by the store in the same transaction as that account's insert). Dedup by content is
-- per owner.
create table users (
    id text primary key,
    email text not null,
    password_hash text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index users_email_key on users (email);

create table api_tokens (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    name text not null,
    prefix text not null,
    token_hash text not null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz
);
create unique index api_tokens_hash_key on api_tokens (token_hash);
create index api_tokens_user_id on api_tokens (user_id);

alter table documents add column owner_id text references users (id);
drop index documents_sha256_key;
create unique index documents_owner_sha256_key on documents (owner_id, sha256);
create index documents_sha256 on documents (sha256);
create index documents_owner_id on documents (owner_id, id);

-- Ending sessions, password resets and known devices.
--
-- A session records its account's session_epoch when it is signed in; changing the password
-- or "log out everywhere" moves the epoch on, and every session signed in before is over.
alter table users add column session_epoch integer not null default 0;

-- One-time reset links an administrator issues (`lector user reset-link`): only the SHA-256
-- of the link's token is kept; a link works once, before it expires.
create table password_resets (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    token_hash text not null,
    expires_at text not null,
    used_at text,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
create unique index password_resets_token_hash_key on password_resets (token_hash);
create index password_resets_user_id on password_resets (user_id);

-- Browsers that have logged in to an account (the device cookie's token, hashed): log-in
-- attempts from them are not slowed down by failures from elsewhere (OWASP's device cookies).
create table known_devices (
    token_hash text primary key,
    user_id text not null references users (id) on delete cascade,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    last_seen_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
create index known_devices_user_id on known_devices (user_id);

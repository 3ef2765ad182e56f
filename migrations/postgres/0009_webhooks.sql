-- Completion webhooks: the URLs a user registered, the deliveries owed to them (a durable
-- queue of its own, claimed with a lease like jobs), and every attempt made (the delivery log).
-- A delivery copies what it reports about the document when the event happens, so the body
-- is the same on every retry, and a document deleted meanwhile is still reported.
create table webhooks (
    id text primary key,
    owner_id text not null references users (id) on delete cascade,
    url text not null,
    description text not null default '',
    secret text not null,
    created_at timestamptz not null default now()
);
create index webhooks_owner_id on webhooks (owner_id, id);

create table webhook_deliveries (
    id bigserial primary key,
    webhook_id text not null references webhooks (id) on delete cascade,
    event_id text not null,
    event text not null,
    document_id text,
    file_name text,
    document_status text,
    page_count integer,
    pages_done bigint,
    pages_failed bigint,
    document_error text,
    status text not null,
    attempts integer not null default 0,
    run_at timestamptz not null default now(),
    locked_by text,
    locked_until timestamptz,
    last_status_code integer,
    last_error text,
    created_at timestamptz not null default now(),
    finished_at timestamptz
);
create index webhook_deliveries_claimable on webhook_deliveries (status, run_at);
create index webhook_deliveries_of_webhook on webhook_deliveries (webhook_id, id);

create table webhook_attempts (
    delivery_id bigint not null references webhook_deliveries (id) on delete cascade,
    attempt integer not null,
    started_at timestamptz not null,
    duration_ms bigint not null,
    status_code integer,
    error text,
    response_excerpt text,
    primary key (delivery_id, attempt)
);

-- Documents, their original bytes (in chunks, so neither upload nor download holds a whole
-- file in memory), their pages, and the job queue. Times are UTC text in one fixed-width
-- format so that comparing them as text compares them as times.
create table documents (
    id text primary key,
    file_name text not null,
    sha256 text not null,
    size_bytes integer not null,
    page_count integer not null,
    status text not null,
    error text,
    engine text not null,
    pdf_password text,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    started_at text,
    finished_at text
);
create unique index documents_sha256_key on documents (sha256);

create table document_blobs (
    document_id text not null references documents (id) on delete cascade,
    seq integer not null,
    data blob not null,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    primary key (document_id, seq)
);

create table pages (
    document_id text not null references documents (id) on delete cascade,
    page_number integer not null,
    text text not null,
    source text not null,
    char_count integer not null,
    extraction_ms integer not null,
    error text,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    primary key (document_id, page_number)
);

create table jobs (
    id integer primary key autoincrement,
    kind text not null,
    document_id text not null references documents (id) on delete cascade,
    status text not null,
    attempts integer not null default 0,
    max_attempts integer not null,
    run_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    locked_by text,
    locked_until text,
    last_error text,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    unique (kind, document_id)
);
create index jobs_claimable on jobs (status, run_at);

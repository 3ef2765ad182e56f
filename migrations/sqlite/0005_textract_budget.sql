-- Pages sent to Textract, for the monthly page budget: one row per content per month (a
-- re-sent file reuses Textract's job through its request token). Kept when a document is
-- deleted: the pages were paid for. A document read locally because the budget was spent
-- says so in its note.
create table textract_usage (
    id integer primary key autoincrement,
    sha256 text not null,
    document_id text not null,
    pages integer not null,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
create index textract_usage_created_at on textract_usage (created_at);
alter table documents add column note text;

-- Full-text search per page: an FTS5 index over the pages' text (external content: the text
-- is stored once, in pages), kept in step by triggers, with the Porter stemmer and the same
-- 100,000 indexed characters per page as on Postgres.
--
-- FTS5 refers to rows by rowid, and VACUUM may renumber the rowids of a table without an
-- integer primary key, which would point the index at the wrong pages: pages is rebuilt
-- with one (autoincrement, so the id of a deleted page is never reused either).
create table pages_new (
    id integer primary key autoincrement,
    document_id text not null references documents (id) on delete cascade,
    page_number integer not null,
    text text not null,
    source text not null,
    char_count integer not null,
    extraction_ms integer not null,
    error text,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    confidence real,
    dpi integer,
    ocr_reason text,
    unique (document_id, page_number)
);
insert into pages_new (document_id, page_number, text, source, char_count, extraction_ms, error,
    created_at, confidence, dpi, ocr_reason)
select document_id, page_number, text, source, char_count, extraction_ms, error,
    created_at, confidence, dpi, ocr_reason
from pages order by document_id, page_number;
drop table pages;
alter table pages_new rename to pages;

create virtual table pages_search using fts5(
    text,
    content = 'pages',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 0'
);
insert into pages_search (rowid, text) select id, substr(text, 1, 100000) from pages;

create trigger pages_search_insert after insert on pages begin
    insert into pages_search (rowid, text) values (new.id, substr(new.text, 1, 100000));
end;
create trigger pages_search_delete after delete on pages begin
    insert into pages_search (pages_search, rowid, text)
    values ('delete', old.id, substr(old.text, 1, 100000));
end;
create trigger pages_search_update after update of text on pages begin
    insert into pages_search (pages_search, rowid, text)
    values ('delete', old.id, substr(old.text, 1, 100000));
    insert into pages_search (rowid, text) values (new.id, substr(new.text, 1, 100000));
end;

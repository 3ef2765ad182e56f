-- Full-text search per page: a tsvector kept by Postgres itself (a generated column, so it
-- follows every insert, re-process and delete of a page) under a GIN index. English stemming
-- and stop words; the first 100,000 characters of a page are indexed (a tsvector is refused
-- over 1 MB, which would fail the page's insert). Postgres' parser reads <word> as an HTML
-- tag and leaves it out, which would make "<table>" in a page about HTML unsearchable and
-- drop it from snippets: '<' is swapped for U+FDD2 (a noncharacter, read as a separator)
-- wherever text reaches the parser, and swapped back in what comes out.
alter table pages add column search tsvector
    generated always as
    (to_tsvector('english'::regconfig, translate(left(text, 100000), '<', U&'\FDD2'))) stored;
create index pages_search on pages using gin (search);

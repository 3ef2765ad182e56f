-- Keep each page's tsvector, and the document id it is joined and sorted on, in the page's
-- row. Postgres moves a row's biggest values out of line (TOAST) once the row passes about
-- 2 KB: a page's tsvector (about 2.4 KB for 250 words) lived out of line, so ranking a
-- matching page or checking a phrase on it read a second index and table (at 200,000 pages
-- that made searches about three times slower), and with the tsvector kept in the row the
-- 37-byte document id would be the next value moved out, making every sort and join on it
-- read TOAST. MAIN keeps both in the row unless the row cannot fit a block; the page's text
-- (read only for snippets) is what moves out. Adding the column again rewrites every row
-- with the new storage (about 100 s per 200,000 pages, with the index).
alter table pages drop column search;
alter table pages
    add column search tsvector
        generated always as
        (to_tsvector('english'::regconfig, translate(left(text, 100000), '<', U&'\FDD2'))) stored,
    alter column search set storage main,
    alter column document_id set storage main;
create index pages_search on pages using gin (search);

-- Originals are PDFs, whose streams are already compressed: TOAST's pglz spent CPU on every
-- 1 MiB chunk (3 % of a whole end-to-end run in perf) to save nothing. Store them out of line
-- as they are. Rows written before keep their storage; this applies to new chunks.
alter table document_blobs alter column data set storage external;

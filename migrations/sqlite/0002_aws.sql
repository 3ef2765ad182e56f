-- Originals on S3 (blob_key set: the bytes are not in document_blobs), Textract's job id and
-- per-page confidence, and the slots that cap Textract jobs in flight across all workers.
alter table documents add column blob_key text;
create index documents_blob_key on documents (blob_key) where blob_key is not null;
alter table pages add column confidence real;
alter table jobs add column external_id text;

create table textract_slots (
    slot integer primary key,
    job_id integer references jobs (id) on delete set null,
    claimed_at text,
    created_at text not null default (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

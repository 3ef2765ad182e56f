-- Textract's completion notices (SNS -> SQS), recorded by whichever instance receives them,
-- read by the worker waiting for that job.
create table textract_completions (
    textract_job_id text primary key,
    status text not null,
    created_at timestamptz not null default now()
);

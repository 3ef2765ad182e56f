//! The body of both SQL stores, written once. `store_impl!` expands to an `impl Store` for a
//! struct with fields `pool` (a sqlx pool) and `sql` (the [`Queries`] of its dialect).

/// How a backend spells the few things that differ between Postgres and SQLite.
pub(crate) struct Dialect {
    /// The current time as a column value.
    pub now: &'static str,
    /// The current time plus `param` seconds (a float placeholder such as `$2`).
    pub later: fn(&str) -> String,
    /// Row locking for queue claims (nothing on SQLite, where writers are serialised anyway).
    pub skip_locked: &'static str,
    /// The first instant of the current calendar month (UTC).
    pub month_start: &'static str,
    /// Serialises account creation (empty where writers are serialised anyway).
    pub lock_users: &'static str,
    /// The elements of the JSON array of strings in `$1`, as a subquery.
    pub json_list: &'static str,
    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that has to wait for another writer can
    /// be refused with "database is locked" without the busy timeout being used.
    pub begin_write: &'static str,
}

/// Every statement the stores run, built once from a [`Dialect`].
pub(crate) struct Queries {
    pub insert_document: String,
    pub insert_blob_chunk: String,
    pub insert_job: String,
    pub document_by_id: String,
    pub documents_by_ids: String,
    pub document_by_sha256: String,
    pub documents_newest: String,
    pub documents_before: String,
    pub documents_at: String,
    pub requeue_document: String,
    pub requeue_job: String,
    pub cancel_document: String,
    pub cancel_job: String,
    pub claim_job: String,
    pub heartbeat: String,
    pub job_is_ours: String,
    pub start_document: String,
    pub insert_page: String,
    pub finish_job: String,
    pub finish_document: String,
    pub retry_job: String,
    pub release_job: String,
    pub set_external_id: String,
    pub claim_slot: String,
    pub requeue_document_status: String,
    pub reserve_textract_pages: String,
    pub textract_reserved: String,
    pub textract_pages_this_month: String,
    pub touch_token: String,
    pub oldest_due_job: String,
    pub lock_users: String,
    pub begin_write: &'static str,
    pub webhooks: super::webhooks::WebhookQueries,
    pub accounts: super::accounts::sql::AccountQueries,
}

/// Statements that are the same on both backends.
pub(crate) mod common {
    pub const COUNT_DOCUMENTS: &str = "select count(*) from documents where owner_id = $1";
    pub const PAGES: &str = "select page_number, text, source, char_count, extraction_ms, error, confidence, dpi, ocr_reason \
         from pages where document_id = $1 order by page_number";
    pub const PAGE_NUMBERS: &str =
        "select page_number from pages where document_id = $1 order by page_number";
    pub const BLOB_CHUNK_COUNT: &str = "select count(*) from document_blobs where document_id = $1";
    pub const BLOB_CHUNK: &str =
        "select data from document_blobs where document_id = $1 and seq = $2";
    pub const PASSWORD: &str = "select pdf_password from documents where id = $1";
    pub const STORED_PASSWORDS: &str =
        "select id, pdf_password from documents where pdf_password is not null";
    pub const RESEAL_PASSWORD: &str =
        "update documents set pdf_password = $2 where id = $1 and pdf_password = $3";
    pub const STORED_WEBHOOK_SECRETS: &str = "select id, secret from webhooks";
    pub const RESEAL_WEBHOOK_SECRET: &str =
        "update webhooks set secret = $2 where id = $1 and secret = $3";
    pub const DELETE_DOCUMENT: &str = "delete from documents where id = $1";
    pub const DELETE_PAGES: &str = "delete from pages where document_id = $1";
    pub const DOCUMENT_EXISTS: &str = "select count(*) from documents where id = $1";
    pub const COUNT_BLOB_KEY: &str = "select count(*) from documents where blob_key = $1";
    pub const RELEASE_SLOT: &str =
        "update textract_slots set job_id = null, claimed_at = null where job_id = $1";
    pub const ENSURE_SLOT: &str =
        "insert into textract_slots (slot) values ($1) on conflict (slot) do nothing";
    pub const DOCUMENTS_BY_STATUS: &str =
        "select status, count(*) from documents group by status order by status";
    pub const PAGES_BY_SOURCE: &str =
        "select source, count(*) from pages group by source order by source";
    pub const DOCUMENT_PAGES_BY_SOURCE: &str =
        "select source, count(*) from pages where document_id = $1 group by source order by source";
    pub const RECORD_COMPLETION: &str = "insert into textract_completions (textract_job_id, status) values ($1, $2) \
         on conflict (textract_job_id) do nothing";
    pub const COMPLETION: &str =
        "select status from textract_completions where textract_job_id = $1";
    pub const SET_NOTE: &str = "update documents set note = $2 where id = $1";
    pub const QUEUE_COUNTS: &str = "select \
         coalesce(sum(case when status = 'queued' then 1 else 0 end), 0), \
         coalesce(sum(case when status = 'running' then 1 else 0 end), 0) from jobs";
}

impl Queries {
    pub(crate) fn new(d: &Dialect) -> Self {
        let now = d.now;
        let cols = super::DOCUMENT_COLUMNS;
        let ours = "exists (select 1 from jobs j where j.id = $1 and j.locked_by = $2 and j.status = 'running')";
        Queries {
            insert_document: "insert into documents \
                 (id, file_name, sha256, size_bytes, page_count, status, engine, pdf_password, blob_key, \
                 ocr_mode, ocr_languages, owner_id) \
                 values ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11)"
                .into(),
            insert_blob_chunk: "insert into document_blobs (document_id, seq, data) values ($1, $2, $3)".into(),
            insert_job: "insert into jobs (kind, document_id, status, max_attempts) values ('extract', $1, 'queued', $2)"
                .into(),
            document_by_id: format!("select {cols} from documents d where d.id = $1"),
            documents_by_ids: format!(
                "select {cols} from documents d where d.id in ({})",
                d.json_list
            ),
            document_by_sha256: format!(
                "select {cols} from documents d where d.sha256 = $1 and coalesce(d.owner_id, '') = coalesce($2, '')"
            ),
            documents_newest: format!(
                "select {cols} from documents d where d.owner_id = $2 order by d.id desc limit $1"
            ),
            documents_before: format!(
                "select {cols} from documents d where d.owner_id = $3 and d.id < $1 order by d.id desc limit $2"
            ),
            documents_at: format!(
                "select {cols} from documents d where d.owner_id = $3 order by d.id desc limit $1 offset $2"
            ),
            requeue_document: format!(
                "update documents set status = 'queued', error = null, started_at = null, \
                 finished_at = null, note = null, ocr_mode = coalesce($2, ocr_mode), \
                 ocr_languages = coalesce($3, ocr_languages), updated_at = {now} where id = $1"
            ),
            requeue_job: format!(
                "insert into jobs (kind, document_id, status, max_attempts) values ('extract', $1, 'queued', $2) \
                 on conflict (kind, document_id) do update set status = 'queued', attempts = 0, \
                 max_attempts = excluded.max_attempts, run_at = {now}, locked_by = null, \
                 locked_until = null, last_error = null, external_id = null, updated_at = {now}"
            ),
            cancel_document: format!(
                "update documents set status = 'cancelled', finished_at = {now}, updated_at = {now} \
                 where id = $1 and status in ('queued', 'processing')"
            ),
            cancel_job: format!(
                "update jobs set status = 'cancelled', locked_by = null, locked_until = null, \
                 updated_at = {now} where document_id = $1"
            ),
            claim_job: format!(
                "update jobs set status = 'running', attempts = attempts + 1, locked_by = $1, \
                 locked_until = {later}, updated_at = {now} \
                 where id = (select id from jobs \
                   where (status = 'queued' and run_at <= {now}) or (status = 'running' and locked_until < {now}) \
                   order by run_at, id limit 1 {skip}) \
                 returning id, document_id, attempts, max_attempts, last_error, external_id",
                later = (d.later)("$2"),
                skip = d.skip_locked,
            ),
            heartbeat: format!(
                "update jobs set locked_until = {later}, updated_at = {now} \
                 where id = $1 and locked_by = $2 and status = 'running'",
                later = (d.later)("$3"),
            ),
            job_is_ours: format!("select count(*) from jobs j where {ours}"),
            start_document: format!(
                "update documents set status = 'processing', error = null, finished_at = null, \
                 started_at = coalesce(started_at, {now}), updated_at = {now} \
                 where id = $3 and {ours}"
            ),
            insert_page: format!(
                "insert into pages (document_id, page_number, text, source, char_count, extraction_ms, error, confidence, dpi, ocr_reason) \
                 select $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 where {ours} \
                 on conflict (document_id, page_number) do nothing"
            ),
            finish_job: format!(
                "update jobs set status = $3, last_error = $4, locked_by = null, locked_until = null, \
                 updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'"
            ),
            finish_document: format!(
                "update documents set status = $2, error = $3, finished_at = {now}, updated_at = {now} where id = $1"
            ),
            retry_job: format!(
                "update jobs set status = 'queued', last_error = $3, run_at = {later}, locked_by = null, \
                 locked_until = null, updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'",
                later = (d.later)("$4"),
            ),
            release_job: format!(
                "update jobs set status = 'queued', attempts = attempts - 1, run_at = {later}, locked_by = null, \
                 locked_until = null, updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'",
                later = (d.later)("$3"),
            ),
            set_external_id: format!(
                "update jobs set external_id = $3, updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'"
            ),
            claim_slot: format!(
                "update textract_slots set job_id = $1, claimed_at = {now} \
                 where slot = (select s.slot from textract_slots s \
                   where s.slot <= $3 and (s.job_id is null or s.job_id = $1 or not exists \
                     (select 1 from jobs j where j.id = s.job_id and j.status = 'running' and j.locked_until > {now})) \
                   order by case when s.job_id = $1 then 0 else 1 end, s.slot limit 1 {skip}) \
                 and {ours} returning slot",
                skip = d.skip_locked,
            ),
            requeue_document_status: format!(
                "update documents set status = 'queued', error = $2, updated_at = {now} where id = $1"
            ),
            // Reserves a document's pages unless the month's budget would be passed; the same
            // content is counted once a month. Concurrent reservations can pass the budget by
            // at most the pages of the documents reserved at the same instant.
            reserve_textract_pages: format!(
                "insert into textract_usage (sha256, document_id, pages) select $1, $2, $3 \
                 where not exists (select 1 from textract_usage where sha256 = $1 and created_at >= {month}) \
                 and coalesce((select sum(pages) from textract_usage where created_at >= {month}), 0) + $3 <= $4",
                month = d.month_start,
            ),
            textract_reserved: format!(
                "select count(*) from textract_usage where sha256 = $1 and created_at >= {month}",
                month = d.month_start,
            ),
            touch_token: crate::storage::accounts::sql::touch_token(d),
            oldest_due_job: format!(
                "select min(run_at) from jobs where status = 'queued' and run_at <= {now}"
            ),
            lock_users: d.lock_users.into(),
            begin_write: d.begin_write,
            webhooks: super::webhooks::WebhookQueries::new(d),
            accounts: super::accounts::sql::AccountQueries::new(d),
            textract_pages_this_month: format!(
                "select cast(coalesce(sum(pages), 0) as bigint) from textract_usage where created_at >= {month}",
                month = d.month_start,
            ),
        }
    }
}

/// Implements [`crate::storage::Store`] for `$store`, a struct with `pool` and `sql` fields.
macro_rules! store_impl {
    ($store:ty, $backend:literal, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::storage::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn migrate(&self) -> $crate::storage::Result<()> {
                $migrator
                    .run(&self.pool)
                    .await
                    .map_err(|e| anyhow::Error::new(e).context("applying migrations"))?;
                Ok(())
            }

            async fn ping(&self) -> $crate::storage::Result<()> {
                sqlx::query("select 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn pending_migrations(&self) -> $crate::storage::Result<usize> {
                let applied: Vec<i64> =
                    sqlx::query_scalar("select version from _sqlx_migrations where success")
                        .fetch_all(&self.pool)
                        .await?;
                Ok($migrator
                    .iter()
                    .filter(|m| !applied.contains(&m.version))
                    .count())
            }

            async fn create_document(
                &self,
                doc: &$crate::storage::NewDocument,
                original: Option<&std::path::Path>,
            ) -> $crate::storage::Result<$crate::domain::Document> {
                use tokio::io::AsyncReadExt;
                let mut file =
                    match original {
                        Some(path) => Some(tokio::fs::File::open(path).await.map_err(|e| {
                            anyhow::Error::new(e).context("opening the uploaded file")
                        })?),
                        None => None,
                    };
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                sqlx::query(&self.sql.insert_document)
                    .bind(&doc.id)
                    .bind(&doc.file_name)
                    .bind(&doc.sha256)
                    .bind(doc.size_bytes)
                    .bind(doc.page_count)
                    .bind(doc.engine.as_str())
                    .bind(
                        doc.pdf_password
                            .as_ref()
                            .map(|p| {
                                $crate::storage::seal(
                                    self.keyring.as_deref(),
                                    p,
                                    &$crate::storage::secret_row("documents.pdf_password", &doc.id),
                                )
                            })
                            .transpose()?,
                    )
                    .bind(&doc.blob_key)
                    .bind(doc.ocr.mode.as_str())
                    .bind(&doc.ocr.languages)
                    .bind(&doc.owner_id)
                    .execute(&mut *tx)
                    .await?;
                let mut seq: i64 = 0;
                while let Some(file) = file.as_mut() {
                    let mut chunk = Vec::with_capacity($crate::storage::BLOB_CHUNK_BYTES);
                    file.take($crate::storage::BLOB_CHUNK_BYTES as u64)
                        .read_to_end(&mut chunk)
                        .await
                        .map_err(|e| anyhow::Error::new(e).context("reading the uploaded file"))?;
                    if chunk.is_empty() {
                        break;
                    }
                    sqlx::query(&self.sql.insert_blob_chunk)
                        .bind(&doc.id)
                        .bind(seq as i32)
                        .bind(chunk)
                        .execute(&mut *tx)
                        .await?;
                    seq += 1;
                }
                sqlx::query(&self.sql.insert_job)
                    .bind(&doc.id)
                    .bind(doc.max_attempts)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.get_document(&doc.id).await
            }

            async fn count_documents_with_blob_key(
                &self,
                key: &str,
            ) -> $crate::storage::Result<i64> {
                Ok(
                    sqlx::query_scalar($crate::storage::sql_store::common::COUNT_BLOB_KEY)
                        .bind(key)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn find_document_by_sha256(
                &self,
                owner_id: Option<&str>,
                sha256: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::Document>> {
                let row =
                    sqlx::query_as::<_, $crate::storage::DocumentRow>(&self.sql.document_by_sha256)
                        .bind(sha256)
                        .bind(owner_id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn get_document(
                &self,
                id: &str,
            ) -> $crate::storage::Result<$crate::domain::Document> {
                sqlx::query_as::<_, $crate::storage::DocumentRow>(&self.sql.document_by_id)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?
                    .try_into()
            }

            async fn documents_by_ids(
                &self,
                ids: &[String],
            ) -> $crate::storage::Result<Vec<$crate::domain::Document>> {
                let rows =
                    sqlx::query_as::<_, $crate::storage::DocumentRow>(&self.sql.documents_by_ids)
                        .bind($crate::storage::json_list(ids))
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn list_documents(
                &self,
                owner_id: &str,
                before: Option<&str>,
                limit: i64,
            ) -> $crate::storage::Result<Vec<$crate::domain::Document>> {
                let rows = match before {
                    Some(cursor) => {
                        sqlx::query_as::<_, $crate::storage::DocumentRow>(
                            &self.sql.documents_before,
                        )
                        .bind(cursor)
                        .bind(limit)
                        .bind(owner_id)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query_as::<_, $crate::storage::DocumentRow>(
                            &self.sql.documents_newest,
                        )
                        .bind(limit)
                        .bind(owner_id)
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn list_documents_at(
                &self,
                owner_id: &str,
                offset: i64,
                limit: i64,
            ) -> $crate::storage::Result<Vec<$crate::domain::Document>> {
                let rows =
                    sqlx::query_as::<_, $crate::storage::DocumentRow>(&self.sql.documents_at)
                        .bind(limit)
                        .bind(offset)
                        .bind(owner_id)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn count_documents(&self, owner_id: &str) -> $crate::storage::Result<i64> {
                Ok(
                    sqlx::query_scalar($crate::storage::sql_store::common::COUNT_DOCUMENTS)
                        .bind(owner_id)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn list_pages(
                &self,
                id: &str,
            ) -> $crate::storage::Result<Vec<$crate::domain::Page>> {
                let rows = sqlx::query_as::<_, $crate::storage::PageRow>(
                    $crate::storage::sql_store::common::PAGES,
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn stored_page_numbers(&self, id: &str) -> $crate::storage::Result<Vec<i32>> {
                Ok(
                    sqlx::query_scalar($crate::storage::sql_store::common::PAGE_NUMBERS)
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn blob_chunk_count(&self, id: &str) -> $crate::storage::Result<i64> {
                Ok(
                    sqlx::query_scalar($crate::storage::sql_store::common::BLOB_CHUNK_COUNT)
                        .bind(id)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn blob_chunk(&self, id: &str, seq: i64) -> $crate::storage::Result<Vec<u8>> {
                Ok(
                    sqlx::query_scalar($crate::storage::sql_store::common::BLOB_CHUNK)
                        .bind(id)
                        .bind(seq as i32)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn document_password(
                &self,
                id: &str,
            ) -> $crate::storage::Result<Option<secrecy::SecretString>> {
                let password: Option<String> =
                    sqlx::query_scalar($crate::storage::sql_store::common::PASSWORD)
                        .bind(id)
                        .fetch_one(&self.pool)
                        .await?;
                let row = $crate::storage::secret_row("documents.pdf_password", id);
                password
                    .map(|stored| $crate::storage::open(self.keyring.as_deref(), stored, &row))
                    .transpose()
            }

            async fn delete_document(&self, id: &str) -> $crate::storage::Result<()> {
                let done = sqlx::query($crate::storage::sql_store::common::DELETE_DOCUMENT)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::storage::Error::NotFound);
                }
                Ok(())
            }

            async fn requeue_document(
                &self,
                id: &str,
                max_attempts: i32,
                ocr: Option<&$crate::domain::ocr::OcrChoice>,
            ) -> $crate::storage::Result<()> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let done = sqlx::query(&self.sql.requeue_document)
                    .bind(id)
                    .bind(ocr.map(|o| o.mode.as_str()))
                    .bind(ocr.map(|o| o.languages.as_str()))
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::storage::Error::NotFound);
                }
                sqlx::query($crate::storage::sql_store::common::DELETE_PAGES)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&self.sql.requeue_job)
                    .bind(id)
                    .bind(max_attempts)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn cancel_document(&self, id: &str) -> $crate::storage::Result<bool> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let done = sqlx::query(&self.sql.cancel_document)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    let exists: i64 =
                        sqlx::query_scalar($crate::storage::sql_store::common::DOCUMENT_EXISTS)
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?;
                    return if exists == 0 {
                        Err($crate::storage::Error::NotFound)
                    } else {
                        Ok(false)
                    };
                }
                sqlx::query(&self.sql.cancel_job)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_job(
                &self,
                worker: &str,
                lease: std::time::Duration,
            ) -> $crate::storage::Result<Option<$crate::storage::ClaimedJob>> {
                Ok(
                    sqlx::query_as::<_, $crate::storage::ClaimedJob>(&self.sql.claim_job)
                        .bind(worker)
                        .bind(lease.as_secs_f64())
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn heartbeat(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                lease: std::time::Duration,
            ) -> $crate::storage::Result<bool> {
                let done = sqlx::query(&self.sql.heartbeat)
                    .bind(job.id)
                    .bind(worker)
                    .bind(lease.as_secs_f64())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn start_document(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
            ) -> $crate::storage::Result<bool> {
                let done = sqlx::query(&self.sql.start_document)
                    .bind(job.id)
                    .bind(worker)
                    .bind(&job.document_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_pages(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                pages: &[$crate::storage::NewPage],
            ) -> $crate::storage::Result<bool> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                for page in pages {
                    let done = sqlx::query(&self.sql.insert_page)
                        .bind(job.id)
                        .bind(worker)
                        .bind(&job.document_id)
                        .bind(page.number)
                        .bind(&page.text)
                        .bind(page.source.as_str())
                        .bind(page.text.chars().count() as i32)
                        .bind(page.extraction_ms)
                        .bind(&page.error)
                        .bind(page.confidence)
                        .bind(page.dpi)
                        .bind(&page.ocr_reason)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 1 {
                        continue;
                    }
                    // Nothing inserted: either the page was already there (a resumed job) or
                    // the job is no longer ours. Only the second should stop the worker (and
                    // the rollback on drop stores none of these pages).
                    let ours: i64 = sqlx::query_scalar(&self.sql.job_is_ours)
                        .bind(job.id)
                        .bind(worker)
                        .fetch_one(&mut *tx)
                        .await?;
                    if ours != 1 {
                        return Ok(false);
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn complete_job(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
            ) -> $crate::storage::Result<bool> {
                self.finish(job, worker, "done", None).await
            }

            async fn retry_job(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                error: &str,
                delay: std::time::Duration,
            ) -> $crate::storage::Result<()> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let done = sqlx::query(&self.sql.retry_job)
                    .bind(job.id)
                    .bind(worker)
                    .bind(error)
                    .bind(delay.as_secs_f64())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    let message = format!("attempt {} failed, will retry: {error}", job.attempts);
                    sqlx::query(&self.sql.requeue_document_status)
                        .bind(&job.document_id)
                        .bind(message)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn fail_job(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                error: &str,
            ) -> $crate::storage::Result<()> {
                self.finish(job, worker, "failed", Some(error))
                    .await
                    .map(|_| ())
            }

            async fn release_job(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                delay: std::time::Duration,
            ) -> $crate::storage::Result<()> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let done = sqlx::query(&self.sql.release_job)
                    .bind(job.id)
                    .bind(worker)
                    .bind(delay.as_secs_f64())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    sqlx::query(&self.sql.requeue_document_status)
                        .bind(&job.document_id)
                        .bind(None::<String>)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_external_id(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                external_id: &str,
            ) -> $crate::storage::Result<bool> {
                let done = sqlx::query(&self.sql.set_external_id)
                    .bind(job.id)
                    .bind(worker)
                    .bind(external_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn ensure_textract_slots(&self, cap: u32) -> $crate::storage::Result<()> {
                for slot in 1..=cap as i32 {
                    sqlx::query($crate::storage::sql_store::common::ENSURE_SLOT)
                        .bind(slot)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }

            async fn claim_textract_slot(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                cap: u32,
            ) -> $crate::storage::Result<bool> {
                let slot: Option<i32> = sqlx::query_scalar(&self.sql.claim_slot)
                    .bind(job.id)
                    .bind(worker)
                    .bind(cap as i32)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(slot.is_some())
            }

            async fn release_textract_slot(
                &self,
                job: &$crate::storage::ClaimedJob,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::sql_store::common::RELEASE_SLOT)
                    .bind(job.id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn oldest_due_job(
                &self,
            ) -> $crate::storage::Result<Option<chrono::DateTime<chrono::Utc>>> {
                Ok(sqlx::query_scalar(&self.sql.oldest_due_job)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn queue_counts(&self) -> $crate::storage::Result<$crate::storage::QueueCounts> {
                let (queued, running): (i64, i64) =
                    sqlx::query_as($crate::storage::sql_store::common::QUEUE_COUNTS)
                        .fetch_one(&self.pool)
                        .await?;
                Ok($crate::storage::QueueCounts { queued, running })
            }

            async fn record_textract_completion(
                &self,
                textract_job_id: &str,
                status: &str,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::sql_store::common::RECORD_COMPLETION)
                    .bind(textract_job_id)
                    .bind(status)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn textract_completion(
                &self,
                textract_job_id: &str,
            ) -> $crate::storage::Result<Option<String>> {
                Ok(
                    sqlx::query_scalar($crate::storage::sql_store::common::COMPLETION)
                        .bind(textract_job_id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn documents_by_status(&self) -> $crate::storage::Result<Vec<(String, i64)>> {
                Ok(
                    sqlx::query_as($crate::storage::sql_store::common::DOCUMENTS_BY_STATUS)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn pages_by_source(&self) -> $crate::storage::Result<Vec<(String, i64)>> {
                Ok(
                    sqlx::query_as($crate::storage::sql_store::common::PAGES_BY_SOURCE)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn document_pages_by_source(
                &self,
                id: &str,
            ) -> $crate::storage::Result<Vec<(String, i64)>> {
                Ok(
                    sqlx::query_as($crate::storage::sql_store::common::DOCUMENT_PAGES_BY_SOURCE)
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn reserve_textract_pages(
                &self,
                sha256: &str,
                document_id: &str,
                pages: i32,
                budget: i64,
            ) -> $crate::storage::Result<bool> {
                let inserted = sqlx::query(&self.sql.reserve_textract_pages)
                    .bind(sha256)
                    .bind(document_id)
                    .bind(pages)
                    .bind(budget)
                    .execute(&self.pool)
                    .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(true);
                }
                let reserved: i64 = sqlx::query_scalar(&self.sql.textract_reserved)
                    .bind(sha256)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(reserved > 0)
            }

            async fn textract_pages_this_month(&self) -> $crate::storage::Result<i64> {
                Ok(sqlx::query_scalar(&self.sql.textract_pages_this_month)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn set_document_note(
                &self,
                id: &str,
                note: Option<&str>,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::sql_store::common::SET_NOTE)
                    .bind(id)
                    .bind(note)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn seal_stored_secrets(&self) -> $crate::storage::Result<u64> {
                use $crate::storage::sql_store::common;
                let keyring = self.keyring.as_deref().ok_or_else(|| {
                    anyhow::anyhow!("no key to seal secrets with is configured (LECTOR_SECRET_KEY)")
                })?;
                let mut sealed = 0;
                for (select, update, column) in [
                    (
                        common::STORED_PASSWORDS,
                        common::RESEAL_PASSWORD,
                        "documents.pdf_password",
                    ),
                    (
                        common::STORED_WEBHOOK_SECRETS,
                        common::RESEAL_WEBHOOK_SECRET,
                        "webhooks.secret",
                    ),
                ] {
                    let stored: Vec<(String, String)> =
                        sqlx::query_as(select).fetch_all(&self.pool).await?;
                    for (id, value) in stored {
                        let row = $crate::storage::secret_row(column, &id);
                        let Some(resealed) = $crate::storage::reseal(keyring, value.clone(), &row)?
                        else {
                            continue;
                        };
                        // Compare-and-set: another instance may be doing the same.
                        sealed += sqlx::query(update)
                            .bind(&id)
                            .bind(&resealed)
                            .bind(&value)
                            .execute(&self.pool)
                            .await?
                            .rows_affected();
                    }
                }
                Ok(sealed)
            }
        }

        impl $store {
            /// Ends the job (`done` or `failed`) and the document with it, if still ours.
            async fn finish(
                &self,
                job: &$crate::storage::ClaimedJob,
                worker: &str,
                status: &str,
                error: Option<&str>,
            ) -> $crate::storage::Result<bool> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let done = sqlx::query(&self.sql.finish_job)
                    .bind(job.id)
                    .bind(worker)
                    .bind(status)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(&self.sql.finish_document)
                    .bind(&job.document_id)
                    .bind(status)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                // The webhooks' events are queued with the status they report: both land, or
                // neither does.
                sqlx::query(&self.sql.webhooks.queue_document_event)
                    .bind(&job.document_id)
                    .bind(uuid::Uuid::now_v7().to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

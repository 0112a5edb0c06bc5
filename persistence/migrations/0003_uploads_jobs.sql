-- 0003_uploads_jobs: what resumable uploads, the durable job queue and repository processing need beyond 0001
-- (uploads, jobs, repositories, files and file_segments are there already).
--
-- Applied once, like every migration, in its own transaction; never edited once applied.

-- ---------------------------------------------------------------------------------------------------------
-- The job that processes a completed upload; set in the transaction that completes it, so a completed upload
-- always has its job.
ALTER TABLE uploads ADD COLUMN job_id uuid REFERENCES jobs (id) ON DELETE SET NULL;
CREATE INDEX uploads_job_id_idx ON uploads (job_id) WHERE job_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- The job that last wrote a file: a retried attempt finds the files of its job again, and a job that fails for
-- good marks the files it did not finish as failed.
ALTER TABLE files ADD COLUMN job_id uuid REFERENCES jobs (id) ON DELETE SET NULL;
CREATE INDEX files_job_id_idx ON files (job_id) WHERE job_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- What a finished job produced (a JSON document) and when it finished.
ALTER TABLE jobs ADD COLUMN result jsonb;
ALTER TABLE jobs ADD COLUMN finished_at timestamptz;

-- ---------------------------------------------------------------------------------------------------------
-- One row per attempt of a job: where and when it ran and how it ended. Retries and their backoff, and leases
-- taken back from dead workers, can be read here after the fact. An attempt given back by a node shutting down
-- ('released') is not counted, so the next claim of the job reuses its number (and its row).
CREATE TABLE job_attempts (
  job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt     integer     NOT NULL CHECK (attempt >= 1),
  owner       text        NOT NULL CHECK (char_length(owner) BETWEEN 1 AND 200),
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  outcome     text        CHECK (outcome IN ('done', 'failed', 'lease_expired', 'released')),
  error       text,
  PRIMARY KEY (job_id, attempt) -- also serves "the attempts of job X" in order
);

-- 0011_job_detail: what a running job is doing, for progress bars (GET /api/jobs/{id} and its event stream,
-- issue 18). A JSON object written by the job's runner with its progress: the current step and, for an upload's
-- processing, files and bytes done out of their totals. Guarded by the lease like every other write of a running job.

ALTER TABLE jobs ADD COLUMN detail jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object');

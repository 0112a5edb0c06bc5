-- 0012_plans: AI plans for uploaded repositories (issue 18). "Plans" are now what a user asks the model to make of
-- a repository; the billing tiers that had the name are renamed tiers, with their rows, and users.plan still names
-- a tier (the HTTP API keeps calling it plan).

ALTER TABLE plans RENAME TO tiers;
ALTER INDEX plans_pkey RENAME TO tiers_pkey;
ALTER TABLE tiers RENAME CONSTRAINT plans_name_check TO tiers_name_check;
ALTER TABLE tiers RENAME CONSTRAINT plans_daily_generation_quota_check TO tiers_daily_generation_quota_check;

-- One plan per job that made it (a retried job finds the plan it stored and stores no second one).
CREATE TABLE plans (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  repository_id uuid        NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  job_id        uuid        UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
  title         text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  overview      text        NOT NULL CHECK (char_length(overview) BETWEEN 1 AND 4000),
  sections      jsonb       NOT NULL CHECK (jsonb_typeof(sections) = 'array'),
  metadata      jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  prompt        text        NOT NULL CHECK (char_length(prompt) BETWEEN 1 AND 4000),
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- "The latest plans of repository X", and the newest plans overall.
CREATE INDEX plans_repository_idx ON plans (repository_id, created_at DESC);
CREATE INDEX plans_created_at_idx ON plans (created_at DESC);
CREATE INDEX plans_user_id_idx ON plans (user_id);

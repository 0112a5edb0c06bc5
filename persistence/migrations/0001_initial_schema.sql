-- 0001_initial_schema: the tables every subsystem of Troupe starts from.
--
-- Applied by persistence/migrations.cpp inside one transaction together with its schema_migrations row
-- (the migrator creates schema_migrations itself before applying anything). Applied migrations are never
-- edited: a change to this schema is a new file, persistence/migrations/NNNN_name.sql.
--
-- Conventions:
--   * ids are uuid (gen_random_uuid(), built into PostgreSQL 13+) unless a table is append-only and only ever
--     read by time range, where a bigint identity is smaller and cheaper to index;
--   * every timestamp is timestamptz (stored as UTC) and every created_at/updated_at defaults to now();
--   * updated_at is maintained by the set_updated_at() trigger, so no code path can forget it;
--   * text lengths that come from clients are bounded by CHECK constraints (char_length counts characters);
--   * every foreign key has an index whose leading column is the referencing column, so deleting a user or a
--     repository (ON DELETE CASCADE / SET NULL) never scans a whole table.

-- Keeps updated_at truthful on every UPDATE of the tables that have one.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------------------
-- Plans: what a user may consume per day. Referenced by users.plan; seeded below.
CREATE TABLE plans (
  name                   text        PRIMARY KEY CHECK (name ~ '^[a-z0-9_]{1,32}$'),
  daily_generation_quota integer     NOT NULL CHECK (daily_generation_quota >= 0),
  created_at             timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (name, daily_generation_quota) VALUES
  ('free', 50),
  ('pro', 1000);

-- ---------------------------------------------------------------------------------------------------------
-- Users. The email is stored normalised to lower case by the application; the CHECK refuses anything else so
-- the UNIQUE constraint really means "one account per address".
CREATE TABLE users (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text        NOT NULL UNIQUE
                            CHECK (email = lower(email) AND char_length(email) BETWEEN 3 AND 254),
  password_hash text        NOT NULL CHECK (password_hash <> ''), -- argon2id encoded string (libsodium)
  role          text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  plan          text        NOT NULL DEFAULT 'free' REFERENCES plans (name),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------------------
-- API keys. Only the SHA-256 of a key is stored (looked up through the UNIQUE index on every authenticated
-- request); key_last4 lets a user tell keys apart in a listing.
CREATE TABLE api_keys (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
  key_last4    text        NOT NULL CHECK (char_length(key_last4) = 4),
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);

CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

-- ---------------------------------------------------------------------------------------------------------
-- Refresh tokens, rotated on every use. All tokens descending from one login share a family_id: presenting a
-- token that was already used revokes the whole family (reuse detection), so used and revoked tokens are kept
-- until they expire. Only the SHA-256 of a token is stored.
CREATE TABLE refresh_tokens (
  id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id   uuid        NOT NULL,
  token_hash  bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  revoked_at  timestamptz,
  CHECK (expires_at > created_at)
);

CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
-- Cleanup deletes every row past expires_at, used and revoked ones included (they are kept until then only for
-- reuse detection); a partial predicate would hide exactly those rows, so the index is on all of them. Logout
-- and refresh revoke through family_id / user_id above.
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- ---------------------------------------------------------------------------------------------------------
-- Repositories: a named set of uploaded files belonging to one user.
CREATE TABLE repositories (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, name) -- also serves "the repositories of user X"
);

-- ---------------------------------------------------------------------------------------------------------
-- Files of a repository and their processing state. The fields that processing discovers (sha256, line_count,
-- language, is_binary) stay NULL until the file is processed.
CREATE TABLE files (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  repository_id uuid        NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  path          text        NOT NULL CHECK (char_length(path) BETWEEN 1 AND 4096),
  size_bytes    bigint      NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  sha256        text        CHECK (sha256 ~ '^[0-9a-f]{64}$'), -- lower-case hex
  line_count    integer     CHECK (line_count >= 0),
  language      text        CHECK (char_length(language) <= 64),
  is_binary     boolean,
  status        text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'processing', 'done', 'failed')),
  error         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (repository_id, path) -- also serves "the files of repository X"
);

CREATE TRIGGER files_set_updated_at BEFORE UPDATE ON files
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------------------
-- File segments: a file's text cut into consecutive line ranges, searchable by full text. Segments must stay
-- small (a tsvector is limited to 1 MB): the processor cuts files into chunks of bounded size.
CREATE TABLE file_segments (
  id         bigint   GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  file_id    uuid     NOT NULL REFERENCES files (id) ON DELETE CASCADE,
  seq        integer  NOT NULL CHECK (seq >= 0),
  start_line integer  NOT NULL CHECK (start_line >= 1),
  end_line   integer  NOT NULL,
  content    text     NOT NULL,
  -- 'simple': no stemming or stop words, which suits identifiers in source code.
  tsv        tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
  UNIQUE (file_id, seq), -- also serves "the segments of file X" in order
  CHECK (end_line >= start_line)
);

CREATE INDEX file_segments_tsv_idx ON file_segments USING gin (tsv);

-- ---------------------------------------------------------------------------------------------------------
-- Resumable (tus) uploads. upload_offset only moves forward (enforced by the writer) and never passes
-- upload_length. The bytes live at storage_path until the upload completes or expires.
CREATE TABLE uploads (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  repository_id uuid        REFERENCES repositories (id) ON DELETE SET NULL,
  filename      text        NOT NULL CHECK (char_length(filename) BETWEEN 1 AND 1024),
  upload_length bigint      NOT NULL CHECK (upload_length >= 0),
  upload_offset bigint      NOT NULL DEFAULT 0,
  metadata      text        NOT NULL DEFAULT '', -- the client's Upload-Metadata header, verbatim
  storage_path  text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  completed_at  timestamptz,
  deleted_at    timestamptz,
  CHECK (upload_offset >= 0 AND upload_offset <= upload_length)
);

CREATE TRIGGER uploads_set_updated_at BEFORE UPDATE ON uploads
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE INDEX uploads_user_id_idx ON uploads (user_id);
CREATE INDEX uploads_repository_id_idx ON uploads (repository_id) WHERE repository_id IS NOT NULL;
-- The expiry sweeper looks only at uploads still in progress.
CREATE INDEX uploads_expires_at_pending_idx ON uploads (expires_at)
  WHERE completed_at IS NULL AND deleted_at IS NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Background jobs. A dispatcher claims the next runnable job (highest priority, then earliest run_at) with
-- SELECT ... FOR UPDATE SKIP LOCKED, sets state = 'running' and a lease; a job whose lease_until has passed is
-- taken back by the lease sweeper. A failed attempt goes to 'retrying' with a later run_at until
-- attempts = max_attempts, then to 'failed'.
CREATE TABLE jobs (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid        REFERENCES users (id) ON DELETE SET NULL,
  kind         text        NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 64),
  payload      jsonb       NOT NULL DEFAULT '{}',
  state        text        NOT NULL DEFAULT 'queued'
                           CHECK (state IN ('queued', 'running', 'retrying', 'done', 'failed')),
  priority     integer     NOT NULL DEFAULT 0,
  attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  run_at       timestamptz NOT NULL DEFAULT now(),
  lease_owner  text,        -- node_id of the cluster member running the job
  lease_until  timestamptz,
  progress     real        NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
  error        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER jobs_set_updated_at BEFORE UPDATE ON jobs
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Dispatch: ORDER BY priority DESC, run_at over runnable jobs only, so finished jobs never slow it down.
CREATE INDEX jobs_dispatch_idx ON jobs (priority DESC, run_at) WHERE state IN ('queued', 'retrying');
-- Lease sweeper: running jobs whose lease has expired.
CREATE INDEX jobs_lease_until_idx ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_user_id_idx ON jobs (user_id) WHERE user_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Usage: tokens and requests per user per UTC day, upserted (INSERT ... ON CONFLICT DO UPDATE) by the metering
-- writer. The primary key serves both the upsert and "usage of user X over a date range".
CREATE TABLE usage (
  user_id  uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  day      date   NOT NULL,
  tokens   bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
  requests bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
  PRIMARY KEY (user_id, day)
);

-- ---------------------------------------------------------------------------------------------------------
-- Feedback left by users (signed in or not).
CREATE TABLE feedback (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
  ip         inet,
  rating     smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
  comment    text        NOT NULL DEFAULT '' CHECK (char_length(comment) <= 4000),
  lang       text        CHECK (char_length(lang) <= 35), -- BCP 47 tag
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX feedback_created_at_idx ON feedback (created_at);
CREATE INDEX feedback_user_id_idx ON feedback (user_id) WHERE user_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Product funnel events, written in batches (COPY). The id is generated by the server when the event is
-- accepted, so a retried batch inserts nothing twice (ON CONFLICT (id) DO NOTHING).
CREATE TABLE funnel_events (
  id          uuid        PRIMARY KEY,
  user_id     uuid        REFERENCES users (id) ON DELETE SET NULL,
  ip          inet,
  event       text        NOT NULL CHECK (char_length(event) BETWEEN 1 AND 64),
  session_id  text        CHECK (char_length(session_id) <= 128),
  source      text        CHECK (char_length(source) <= 64),
  lang        text        CHECK (char_length(lang) <= 35),
  properties  jsonb       NOT NULL DEFAULT '{}',
  occurred_at timestamptz NOT NULL, -- the client's clock
  received_at timestamptz NOT NULL DEFAULT now(), -- ours
  request_id  text
);

-- Funnel reports: counts of one event over a time range.
CREATE INDEX funnel_events_event_occurred_at_idx ON funnel_events (event, occurred_at);
CREATE INDEX funnel_events_user_id_occurred_at_idx ON funnel_events (user_id, occurred_at)
  WHERE user_id IS NOT NULL;
CREATE INDEX funnel_events_session_id_idx ON funnel_events (session_id) WHERE session_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Security audit trail: logins, failed logins, token reuse, key revocations, rate-limit bans, ...
-- Append-only and read by time range, hence a bigint identity.
CREATE TABLE security_events (
  id         bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  type       text        NOT NULL CHECK (char_length(type) BETWEEN 1 AND 64),
  severity   text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  user_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
  ip         inet,
  request_id text,
  detail     jsonb       NOT NULL DEFAULT '{}', -- never secrets (passwords, tokens, keys)
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX security_events_created_at_idx ON security_events (created_at);
CREATE INDEX security_events_user_id_created_at_idx ON security_events (user_id, created_at)
  WHERE user_id IS NOT NULL;
CREATE INDEX security_events_ip_created_at_idx ON security_events (ip, created_at) WHERE ip IS NOT NULL;
CREATE INDEX security_events_type_created_at_idx ON security_events (type, created_at);

-- ---------------------------------------------------------------------------------------------------------
-- Cluster membership: each node upserts its own row on start and refreshes last_seen_at as a heartbeat;
-- members not seen for a while are considered down.
CREATE TABLE cluster_members (
  node_id      text        PRIMARY KEY CHECK (char_length(node_id) BETWEEN 1 AND 128),
  address      text        NOT NULL CHECK (char_length(address) BETWEEN 1 AND 255),
  port         integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
  state        text        NOT NULL CHECK (state IN ('joining', 'up', 'leaving', 'down')),
  started_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL
);

CREATE INDEX cluster_members_last_seen_at_idx ON cluster_members (last_seen_at);

-- ---------------------------------------------------------------------------------------------------------
-- Idempotency keys (Idempotency-Key header): the first result of a request, replayed for a retry with the
-- same key and the same request_hash (a different hash is a 409). Purged after 24 hours by created_at.
CREATE TABLE idempotency_keys (
  scope        text        NOT NULL, -- e.g. the user id, so keys of different users never collide
  key          text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  request_hash text        NOT NULL,
  result       jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

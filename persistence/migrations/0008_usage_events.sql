-- 0008_usage_events: one row per upstream call of the AI gateway (issue 16), the ledger that spend and usage reports
-- read: who made it (the user, and the API key if one was presented), which model and upstream answered, the tokens
-- (reported by the upstream, or estimated and marked so), and what it cost at the configured prices.
--
-- The daily `usage` table stays: it is what the generation quota counts. A row here is written by the gateway in
-- the same batch as that day's `usage` increment, with an id of its own, so a retried batch never counts a call twice.

CREATE TABLE usage_events (
  id                uuid          PRIMARY KEY,
  user_id           uuid          NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  api_key_id        uuid          REFERENCES api_keys (id) ON DELETE SET NULL,
  request_id        text          CHECK (char_length(request_id) <= 128),
  model             text          NOT NULL CHECK (char_length(model) BETWEEN 1 AND 128),
  upstream          text          NOT NULL CHECK (char_length(upstream) BETWEEN 1 AND 32),
  prompt_tokens     bigint        NOT NULL CHECK (prompt_tokens >= 0),
  completion_tokens bigint        NOT NULL CHECK (completion_tokens >= 0),
  cost_usd          numeric(24, 12) NOT NULL CHECK (cost_usd >= 0),
  -- The upstream reported no usage (a stream that ended before its usage chunk): the tokens are estimated from the
  -- text (four characters a token).
  estimated         boolean       NOT NULL,
  -- complete: the answer reached its end; client_gone: the client left mid-stream (the upstream was read to its
  -- end where it could be, so the numbers are real); failed: the upstream stopped mid-answer.
  outcome           text          NOT NULL CHECK (outcome IN ('complete', 'client_gone', 'failed')),
  created_at        timestamptz   NOT NULL DEFAULT now()
);

-- Reports read one user's rows over a time range.
CREATE INDEX usage_events_user_time_idx ON usage_events (user_id, created_at);
-- Spend per API key.
CREATE INDEX usage_events_key_time_idx ON usage_events (api_key_id, created_at) WHERE api_key_id IS NOT NULL;

-- 0009_api_key_limits: API keys as virtual keys (issue 16). A key may carry its own limits, with the names LiteLLM's
-- users know: the models it may call, a spend budget (per period of budget_duration_s counted from the key's
-- creation, or for its whole life without one), tokens and requests per minute, and a cap on requests in flight.
-- NULL: no limit of that kind (the owner's plan still applies). Limits are set when the key is created and never
-- change; the key's spend in its current period is read from usage_events (api_key_id, created_at).

ALTER TABLE api_keys
  ADD COLUMN models                jsonb           CHECK (models IS NULL OR jsonb_typeof(models) = 'array'),
  ADD COLUMN max_budget_usd        numeric(24, 12) CHECK (max_budget_usd > 0),
  ADD COLUMN budget_duration_s     bigint          CHECK (budget_duration_s > 0),
  ADD COLUMN tpm_limit             bigint          CHECK (tpm_limit > 0),
  ADD COLUMN rpm_limit             bigint          CHECK (rpm_limit > 0),
  ADD COLUMN max_parallel_requests integer         CHECK (max_parallel_requests > 0),
  ADD CONSTRAINT api_keys_duration_needs_budget CHECK (budget_duration_s IS NULL OR max_budget_usd IS NOT NULL);

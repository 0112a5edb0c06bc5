-- 0014_revoked_keys_index: GET /api/security/status lists the API keys revoked recently, newest first.
CREATE INDEX api_keys_revoked_at_idx ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;

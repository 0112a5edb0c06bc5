-- 0002_auth: what authentication needs beyond 0001 (users, api_keys and refresh_tokens are there already).
--
-- Applied once, like every migration, in its own transaction; never edited once applied.

-- ---------------------------------------------------------------------------------------------------------
-- Access tokens (JWTs) revoked before they expire, by their jti: logout adds the current access token here so
-- it stops working at once instead of at its exp. A row is useless after expires_at (the token is refused
-- anyway), so the janitor deletes it then; session actors load a user's unexpired rows (by user_id).
CREATE TABLE revoked_tokens (
  jti        text        PRIMARY KEY CHECK (char_length(jti) BETWEEN 1 AND 255),
  user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL
);

CREATE INDEX revoked_tokens_user_id_idx ON revoked_tokens (user_id);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);

-- 0010_wishlist: the pro wishlist (issue 18). Anyone may put an email on it (POST /api/wishlist, limited per client
-- address); admins read it (GET /api/wishlist). One row per email, normalised to lower case: a second submission of
-- the same email changes nothing, so a retry is harmless and nobody can overwrite another person's note.

CREATE TABLE pro_wishlist (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid        REFERENCES users (id) ON DELETE SET NULL, -- the signed-in submitter, if any
  email      text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254 AND email = lower(email)),
  lang       text        CHECK (char_length(lang) BETWEEN 1 AND 35),
  source     text        CHECK (char_length(source) BETWEEN 1 AND 64),
  note       text        CHECK (char_length(note) BETWEEN 1 AND 2000),
  ip         inet,                                                 -- the submitter's address (behind trusted proxies)
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX pro_wishlist_email_idx ON pro_wishlist (email);
CREATE INDEX pro_wishlist_user_id_idx ON pro_wishlist (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX pro_wishlist_lang_idx ON pro_wishlist (lang) WHERE lang IS NOT NULL;
-- The admin listing pages newest first by (created_at, id).
CREATE INDEX pro_wishlist_created_at_idx ON pro_wishlist (created_at DESC, id DESC);

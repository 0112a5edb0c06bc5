-- 0013_guests: anonymous generation (issue 18, guest.enabled). A guest is a users row of role 'guest' on the tier
-- 'guest', one per client address, whose id the server derives from the address with a keyed hash, so that its
-- quota is counted exactly like a user's (the session actor, the usage table) and a guest token can be bound to
-- its address without a look-up. Guests have no password (the hash below is not argon2id: no login can match it).

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'admin', 'guest'));

INSERT INTO tiers (name, daily_generation_quota) VALUES ('guest', 5);

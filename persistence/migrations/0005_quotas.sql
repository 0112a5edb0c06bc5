-- 0005_quotas: storage used per user (for the per-plan storage quota) and fair dispatch of the job queue.
--
-- Applied once, like every migration, in its own transaction; never edited once applied.

-- ---------------------------------------------------------------------------------------------------------
-- Bytes an upload holds against its owner's storage quota: its Upload-Length from its creation until its bytes
-- are deleted (termination or expiry of an unfinished upload, or its job failing for good) or become repository
-- files (the job registers them in the same transaction), then 0.
ALTER TABLE uploads ADD COLUMN reserved_bytes bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0);

-- ---------------------------------------------------------------------------------------------------------
-- Storage used per user: the reserved_bytes of the user's uploads plus the size_bytes of the files of the user's
-- repositories. Kept exact by the triggers below, so no statement that changes those columns can forget it; the
-- quota itself (a per-plan limit from the configuration) is checked by the statements that add bytes, in their
-- transaction, with this row locked (persistence/uploads_sql.cpp, repositories_sql.cpp).
CREATE TABLE storage_usage (
  user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  bytes      bigint      NOT NULL CHECK (bytes >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Adds `delta` bytes to a user's row. For rows added or changed, a missing row is created (from a positive delta: a
-- negative one on a missing row would mean the accounting is broken, and the CHECK says so). For rows deleted
-- (`deleting`), a user being deleted in this transaction is left alone: its row goes with it.
CREATE FUNCTION storage_add(user_id_ uuid, delta bigint, deleting boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF deleting THEN
    UPDATE storage_usage SET bytes = bytes + delta, updated_at = now()
    WHERE user_id = user_id_ AND EXISTS (SELECT 1 FROM users WHERE id = user_id_);
    RETURN;
  END IF;
  UPDATE storage_usage SET bytes = bytes + delta, updated_at = now() WHERE user_id = user_id_;
  IF NOT FOUND THEN
    INSERT INTO storage_usage AS s (user_id, bytes) VALUES (user_id_, delta)
    ON CONFLICT (user_id) DO UPDATE SET bytes = s.bytes + EXCLUDED.bytes, updated_at = now();
  END IF;
END
$$;

-- The triggers below apply a statement's deltas user by user in id order, so two transactions touching the same
-- users take their rows' locks in the same order (no deadlock).

CREATE FUNCTION storage_uploads_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT user_id, sum(reserved_bytes)::bigint AS bytes FROM new_uploads GROUP BY user_id
           HAVING sum(reserved_bytes) <> 0 ORDER BY user_id LOOP
    PERFORM storage_add(d.user_id, d.bytes, false);
  END LOOP;
  RETURN NULL;
END
$$;

CREATE FUNCTION storage_uploads_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT n.user_id, sum(n.reserved_bytes - o.reserved_bytes)::bigint AS bytes
           FROM new_uploads n JOIN old_uploads o ON o.id = n.id
           GROUP BY n.user_id HAVING sum(n.reserved_bytes - o.reserved_bytes) <> 0 ORDER BY n.user_id LOOP
    PERFORM storage_add(d.user_id, d.bytes, false);
  END LOOP;
  RETURN NULL;
END
$$;

CREATE FUNCTION storage_uploads_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT user_id, sum(reserved_bytes)::bigint AS bytes FROM old_uploads GROUP BY user_id
           HAVING sum(reserved_bytes) <> 0 ORDER BY user_id LOOP
    PERFORM storage_add(d.user_id, -d.bytes, true);
  END LOOP;
  RETURN NULL;
END
$$;

CREATE TRIGGER uploads_storage_inserted AFTER INSERT ON uploads
  REFERENCING NEW TABLE AS new_uploads FOR EACH STATEMENT EXECUTE FUNCTION storage_uploads_inserted();
CREATE TRIGGER uploads_storage_updated AFTER UPDATE ON uploads
  REFERENCING OLD TABLE AS old_uploads NEW TABLE AS new_uploads
  FOR EACH STATEMENT EXECUTE FUNCTION storage_uploads_updated();
CREATE TRIGGER uploads_storage_deleted AFTER DELETE ON uploads
  REFERENCING OLD TABLE AS old_uploads FOR EACH STATEMENT EXECUTE FUNCTION storage_uploads_deleted();

-- Files belong to their repository's user (a file never changes repository).
CREATE FUNCTION storage_files_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT r.user_id, sum(n.size_bytes)::bigint AS bytes FROM new_files n JOIN repositories r ON r.id = n.repository_id
           GROUP BY r.user_id HAVING sum(n.size_bytes) <> 0 ORDER BY r.user_id LOOP
    PERFORM storage_add(d.user_id, d.bytes, false);
  END LOOP;
  RETURN NULL;
END
$$;

CREATE FUNCTION storage_files_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT r.user_id, sum(n.size_bytes - o.size_bytes)::bigint AS bytes
           FROM new_files n JOIN old_files o ON o.id = n.id JOIN repositories r ON r.id = n.repository_id
           GROUP BY r.user_id HAVING sum(n.size_bytes - o.size_bytes) <> 0 ORDER BY r.user_id LOOP
    PERFORM storage_add(d.user_id, d.bytes, false);
  END LOOP;
  RETURN NULL;
END
$$;

-- Files deleted with their repository are not found here (the repository row is gone by then): the
-- repository's own trigger below has subtracted them already.
CREATE FUNCTION storage_files_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT r.user_id, sum(o.size_bytes)::bigint AS bytes FROM old_files o JOIN repositories r ON r.id = o.repository_id
           GROUP BY r.user_id HAVING sum(o.size_bytes) <> 0 ORDER BY r.user_id LOOP
    PERFORM storage_add(d.user_id, -d.bytes, true);
  END LOOP;
  RETURN NULL;
END
$$;

CREATE FUNCTION storage_repository_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM storage_add(OLD.user_id, -(SELECT COALESCE(sum(size_bytes), 0) FROM files WHERE repository_id = OLD.id)::bigint,
                      true);
  RETURN OLD;
END
$$;

CREATE TRIGGER files_storage_inserted AFTER INSERT ON files
  REFERENCING NEW TABLE AS new_files FOR EACH STATEMENT EXECUTE FUNCTION storage_files_inserted();
CREATE TRIGGER files_storage_updated AFTER UPDATE ON files
  REFERENCING OLD TABLE AS old_files NEW TABLE AS new_files
  FOR EACH STATEMENT EXECUTE FUNCTION storage_files_updated();
CREATE TRIGGER files_storage_deleted AFTER DELETE ON files
  REFERENCING OLD TABLE AS old_files FOR EACH STATEMENT EXECUTE FUNCTION storage_files_deleted();
CREATE TRIGGER repositories_storage_deleted BEFORE DELETE ON repositories
  FOR EACH ROW EXECUTE FUNCTION storage_repository_deleted();

-- What the uploads and files already there hold. An upload holds its length while unfinished and not deleted
-- (an expired one until the sweeper deletes it), or once completed until its job has registered files or
-- finished.
UPDATE uploads u SET reserved_bytes = u.upload_length
WHERE (u.completed_at IS NULL AND u.deleted_at IS NULL)
   OR (u.completed_at IS NOT NULL AND u.job_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = u.job_id AND j.state IN ('queued', 'running', 'retrying'))
       AND NOT EXISTS (SELECT 1 FROM files f WHERE f.job_id = u.job_id));
-- (That UPDATE's trigger has counted the reservations; the files come on top.)
SELECT storage_add(r.user_id, sum(f.size_bytes)::bigint, false) FROM files f JOIN repositories r ON r.id = f.repository_id
GROUP BY r.user_id HAVING sum(f.size_bytes) <> 0;

-- ---------------------------------------------------------------------------------------------------------
-- Fair dispatch. Within a priority, the job queue takes turns between the owners of runnable jobs: the owner
-- served longest ago (or never) goes first, so one user's thousand queued archives cannot starve another user's
-- single upload. Jobs of nobody (user_id NULL) take their turns as one more owner, the nil UUID; hence no foreign
-- key (a deleted user's row is a few bytes that no claim reads again).
CREATE TABLE job_turns (
  owner     uuid        PRIMARY KEY,
  served_at timestamptz NOT NULL
);

-- The claim walks the owners of runnable jobs through this index (one probe per owner) and reads each owner's
-- first jobs by priority and run_at. It replaces jobs_dispatch_idx, which no query uses any more.
CREATE INDEX jobs_owner_dispatch_idx
  ON jobs ((COALESCE(user_id, '00000000-0000-0000-0000-000000000000'::uuid)), priority DESC, run_at)
  WHERE state IN ('queued', 'retrying');
DROP INDEX jobs_dispatch_idx;

-- llmbase 0009: operations (`llmbase stats`, `maintain`, `archive conversations`, `delete`).
--
-- - conversations.archived_at: when a conversation was archived (kept by trigger from
--   is_archived), so one archive run can be undone exactly (`unarchive --run`).
-- - llmbase.tenant_tables(): every table and partition holding tenant data, read from the
--   catalog, so deleting a tenant or a user covers tables added later without code changes.
-- - llmbase.deleted_subjects: tombstones of deleted tenants and users. Tables without a
--   foreign key to their tenant (the request log, rollups, dead letters) can receive a
--   record that was in flight when its tenant was deleted; `llmbase maintain` removes those.

-- ---------------------------------------------------------------------------------------
ALTER TABLE llmbase.conversations ADD COLUMN archived_at timestamptz;
COMMENT ON COLUMN llmbase.conversations.archived_at IS
    'When is_archived last became true (NULL while not archived); an archive run''s timestamp.';

CREATE FUNCTION llmbase.conversations_archived_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
AS $$
BEGIN
    IF NOT NEW.is_archived THEN
        NEW.archived_at := NULL;
    ELSIF NEW.archived_at IS NOT DISTINCT FROM OLD.archived_at THEN
        NEW.archived_at := now();  -- archived by a plain flag change: stamp it
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER conversations_archived_at BEFORE UPDATE ON llmbase.conversations
    FOR EACH ROW WHEN (OLD.is_archived IS DISTINCT FROM NEW.is_archived)
    EXECUTE FUNCTION llmbase.conversations_archived_at();

-- ---------------------------------------------------------------------------------------
CREATE FUNCTION llmbase.tenant_tables()
    RETURNS TABLE (table_schema text, table_name text, kind text, user_column text,
                   parent text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
AS $$
    SELECT n.nspname::text, c.relname::text,
           CASE WHEN c.relkind = 'p' THEN 'partitioned'
                WHEN c.relispartition THEN 'partition' ELSE 'table' END,
           -- the column naming a row's user: user_id, else subject_key (limit and budget
           -- usage: the user's id, or the all-zero uuid for tenant-level rows), else none
           (SELECT u.attname::text FROM pg_attribute u
             WHERE u.attrelid = c.oid AND u.attname IN ('user_id', 'subject_key') AND u.attnum > 0
               AND NOT u.attisdropped
             ORDER BY u.attname = 'user_id' DESC LIMIT 1),
           (SELECT pn.nspname || '.' || pc.relname
              FROM pg_inherits i
              JOIN pg_class pc ON pc.oid = i.inhparent
              JOIN pg_namespace pn ON pn.oid = pc.relnamespace
             WHERE i.inhrelid = c.oid)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0
                         AND NOT a.attisdropped
     WHERE n.nspname IN ('llmbase', 'llmbase_archive') AND c.relkind IN ('r', 'p')
     ORDER BY 1, 2
$$;
REVOKE ALL ON FUNCTION llmbase.tenant_tables() FROM PUBLIC;
COMMENT ON FUNCTION llmbase.tenant_tables() IS
    'Every table, partitioned table and partition with a tenant_id column in llmbase and llmbase_archive, and its user column.';

-- ---------------------------------------------------------------------------------------
CREATE TABLE llmbase.deleted_subjects (
    kind        text NOT NULL CHECK (kind IN ('tenant', 'user')),
    subject     uuid NOT NULL,
    owner       uuid,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject),
    CHECK ((kind = 'user') = (owner IS NOT NULL))
);
COMMENT ON TABLE llmbase.deleted_subjects IS
    'Tombstones of deleted tenants and users (owner: the user''s tenant); operator only.';
ALTER TABLE llmbase.deleted_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.deleted_subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_all ON llmbase.deleted_subjects TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- ---------------------------------------------------------------------------------------
-- Fix of 0002: deleting (or changing) feedback without a rating (score or comment only)
-- failed, because `(NULL = 1)::int` is NULL and the summary's thumbs columns are NOT NULL.
-- It surfaced as a failed tenant or user deletion (the cascade deletes their feedback).
CREATE OR REPLACE FUNCTION llmbase.feedback_maintain_summary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE llmbase.feedback_summary s
           SET thumbs_up      = s.thumbs_up - coalesce((OLD.rating = 1)::int, 0),
               thumbs_down    = s.thumbs_down - coalesce((OLD.rating = -1)::int, 0),
               score_count    = s.score_count - (OLD.score IS NOT NULL)::int,
               score_sum      = s.score_sum - coalesce(OLD.score, 0),
               comment_count  = s.comment_count - (OLD.comment IS NOT NULL)::int,
               feedback_count = s.feedback_count - 1,
               updated_at     = now()
         WHERE s.tenant_id = OLD.tenant_id AND s.message_id = OLD.message_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO llmbase.feedback_summary AS s
               (tenant_id, message_id, conversation_id, thumbs_up, thumbs_down, score_count,
                score_sum, comment_count, feedback_count)
        VALUES (NEW.tenant_id, NEW.message_id, NEW.conversation_id,
                coalesce((NEW.rating = 1)::int, 0), coalesce((NEW.rating = -1)::int, 0),
                (NEW.score IS NOT NULL)::int, coalesce(NEW.score, 0),
                (NEW.comment IS NOT NULL)::int, 1)
        ON CONFLICT (tenant_id, message_id) DO UPDATE
           SET thumbs_up      = s.thumbs_up + EXCLUDED.thumbs_up,
               thumbs_down    = s.thumbs_down + EXCLUDED.thumbs_down,
               score_count    = s.score_count + EXCLUDED.score_count,
               score_sum      = s.score_sum + EXCLUDED.score_sum,
               comment_count  = s.comment_count + EXCLUDED.comment_count,
               feedback_count = s.feedback_count + 1,
               updated_at     = now();
        IF TG_OP = 'INSERT' THEN
            PERFORM llmbase.bump_user_activity(NEW.tenant_id, NEW.user_id, p_feedback => 1);
        END IF;
    ELSE
        PERFORM llmbase.bump_user_activity(OLD.tenant_id, OLD.user_id, p_feedback => -1);
    END IF;
    RETURN NULL;
END
$$;

-- Reverse of 0009.
CREATE OR REPLACE FUNCTION llmbase.feedback_maintain_summary() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE llmbase.feedback_summary s
           SET thumbs_up      = s.thumbs_up - (OLD.rating = 1)::int,
               thumbs_down    = s.thumbs_down - (OLD.rating = -1)::int,
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

DROP TABLE llmbase.deleted_subjects;
DROP FUNCTION llmbase.tenant_tables();
DROP TRIGGER conversations_archived_at ON llmbase.conversations;
DROP FUNCTION llmbase.conversations_archived_at();
ALTER TABLE llmbase.conversations DROP COLUMN archived_at;

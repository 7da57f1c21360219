-- llmbase 0002: conversations, messages, feedback and its always-current summary.

CREATE TABLE llmbase.conversations (
    tenant_id        uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                     REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id               uuid NOT NULL DEFAULT llmbase.uuid7(),
    user_id          uuid DEFAULT llmbase.current_user_id(),
    title            text CHECK (length(title) <= 500),
    model            text CHECK (length(model) <= 200),
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    is_archived      boolean NOT NULL DEFAULT false,
    message_count    integer NOT NULL DEFAULT 0,
    total_tokens     bigint NOT NULL DEFAULT 0,
    total_cost_usd   numeric(20, 10) NOT NULL DEFAULT 0,
    last_message_at  timestamptz,
    completed_at     timestamptz,
    total_time_ms    bigint CHECK (total_time_ms >= 0),
    total_iterations integer CHECK (total_iterations >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.conversations IS
    'Chat sessions: totals maintained by trigger; completion timing from seed 004.';
-- List a user's conversations newest first (cursor pagination on (updated_at, id)).
CREATE INDEX conversations_user_recent ON llmbase.conversations (tenant_id, user_id, updated_at DESC, id DESC);
-- List a tenant's conversations newest first, and archive-by-age sweeps.
CREATE INDEX conversations_tenant_recent ON llmbase.conversations (tenant_id, updated_at DESC, id DESC);
CREATE TRIGGER conversations_touch BEFORE UPDATE ON llmbase.conversations
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION llmbase.touch_updated_at();

CREATE TABLE llmbase.messages (
    tenant_id            uuid NOT NULL DEFAULT llmbase.current_tenant_id(),
    id                   uuid NOT NULL DEFAULT llmbase.uuid7(),
    conversation_id      uuid NOT NULL,
    seq                  integer NOT NULL DEFAULT 0,
    role                 text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content              text NOT NULL,
    user_id              uuid,
    model                text CHECK (length(model) <= 200),
    token_count          integer CHECK (token_count >= 0),
    cost_usd             numeric(20, 10) CHECK (cost_usd >= 0),
    latency_ms           integer CHECK (latency_ms >= 0),
    provider_response_ms integer CHECK (provider_response_ms >= 0),
    metadata             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, conversation_id, seq),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES llmbase.conversations (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.messages IS
    'Messages of a conversation in order (seq); adding one updates the conversation atomically.';
COMMENT ON COLUMN llmbase.messages.provider_response_ms IS 'Provider API time for this reply (seed 004 anthropic_response_time_ms).';

-- Number the message and roll its figures into the conversation and the author's profile in
-- the inserting transaction. The conversation row lock serialises concurrent writers, so
-- totals are exact.
CREATE FUNCTION llmbase.messages_before_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
DECLARE
    owner uuid;
BEGIN
    UPDATE llmbase.conversations c
       SET message_count   = c.message_count + 1,
           total_tokens    = c.total_tokens + coalesce(NEW.token_count, 0),
           total_cost_usd  = c.total_cost_usd + coalesce(NEW.cost_usd, 0),
           last_message_at = NEW.created_at,
           updated_at      = now()
     WHERE c.tenant_id = NEW.tenant_id AND c.id = NEW.conversation_id
    RETURNING c.message_count, c.user_id INTO NEW.seq, owner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'conversation % not found', NEW.conversation_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NEW.user_id IS NULL AND NEW.role = 'user' THEN
        NEW.user_id := owner;
    END IF;
    IF coalesce(NEW.user_id, owner) IS NOT NULL THEN
        PERFORM llmbase.bump_user_activity(NEW.tenant_id, coalesce(NEW.user_id, owner),
            p_messages => 1, p_tokens => coalesce(NEW.token_count, 0)::bigint,
            p_cost => coalesce(NEW.cost_usd, 0), p_at => NEW.created_at);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_number BEFORE INSERT ON llmbase.messages
    FOR EACH ROW EXECUTE FUNCTION llmbase.messages_before_insert();

-- Runs first (triggers fire in name order) and as the caller, so under the caller's RLS: a
-- conversation the caller cannot see fails exactly like a missing one, before the definer
-- trigger above touches (and locks) it. Without this, "not found" versus "row-level
-- security" told a caller whether another tenant's or user's conversation id exists.
CREATE FUNCTION llmbase.messages_check_conversation() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF NOT llmbase.conversation_visible(NEW.tenant_id, NEW.conversation_id) THEN
        RAISE EXCEPTION 'conversation % not found', NEW.conversation_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_check_conversation BEFORE INSERT ON llmbase.messages
    FOR EACH ROW EXECUTE FUNCTION llmbase.messages_check_conversation();

CREATE FUNCTION llmbase.conversations_after_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
BEGIN
    IF NEW.user_id IS NOT NULL THEN
        PERFORM llmbase.bump_user_activity(NEW.tenant_id, NEW.user_id, p_conversations => 1,
                                           p_at => NEW.created_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_profile AFTER INSERT ON llmbase.conversations
    FOR EACH ROW EXECUTE FUNCTION llmbase.conversations_after_insert();

CREATE TABLE llmbase.feedback (
    tenant_id       uuid NOT NULL DEFAULT llmbase.current_tenant_id(),
    id              uuid NOT NULL DEFAULT llmbase.uuid7(),
    message_id      uuid NOT NULL,
    conversation_id uuid NOT NULL,
    user_id         uuid NOT NULL DEFAULT llmbase.current_user_id(),
    rating          smallint CHECK (rating IN (-1, 1)),
    score           real CHECK (score >= 0 AND score <= 1 AND score = score),
    comment         text CHECK (length(comment) <= 10000),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, message_id, user_id),
    CHECK (rating IS NOT NULL OR score IS NOT NULL OR comment IS NOT NULL),
    FOREIGN KEY (tenant_id, message_id) REFERENCES llmbase.messages (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES llmbase.conversations (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.feedback IS 'Thumbs up/down (+1/-1), optional score 0..1 and comment; one per user per message.';
CREATE INDEX feedback_conversation ON llmbase.feedback (tenant_id, conversation_id);
CREATE INDEX feedback_user ON llmbase.feedback (tenant_id, user_id, updated_at DESC);
CREATE TRIGGER feedback_touch BEFORE UPDATE ON llmbase.feedback
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

-- Per-message feedback summary, maintained by trigger (seed 002 refreshed a materialized
-- view daily; this one is current within the rating's own transaction).
CREATE TABLE llmbase.feedback_summary (
    tenant_id       uuid NOT NULL,
    message_id      uuid NOT NULL,
    conversation_id uuid NOT NULL,
    thumbs_up       integer NOT NULL DEFAULT 0,
    thumbs_down     integer NOT NULL DEFAULT 0,
    score_count     integer NOT NULL DEFAULT 0,
    score_sum       double precision NOT NULL DEFAULT 0,
    comment_count   integer NOT NULL DEFAULT 0,
    feedback_count  integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id),
    FOREIGN KEY (tenant_id, message_id) REFERENCES llmbase.messages (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.feedback_summary IS 'Per-message feedback totals, always current (maintained by trigger).';
CREATE INDEX feedback_summary_conversation ON llmbase.feedback_summary (tenant_id, conversation_id);

CREATE FUNCTION llmbase.feedback_maintain_summary() RETURNS trigger
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
CREATE TRIGGER feedback_summary_maintain AFTER INSERT OR UPDATE OR DELETE ON llmbase.feedback
    FOR EACH ROW EXECUTE FUNCTION llmbase.feedback_maintain_summary();

-- Per-conversation feedback, computed from the per-message summary (cheap: one index range).
CREATE VIEW llmbase.conversation_feedback WITH (security_invoker = true) AS
SELECT tenant_id, conversation_id,
       sum(thumbs_up)::bigint      AS thumbs_up,
       sum(thumbs_down)::bigint    AS thumbs_down,
       sum(score_count)::bigint    AS score_count,
       CASE WHEN sum(score_count) > 0 THEN sum(score_sum) / sum(score_count) END AS score_avg,
       sum(comment_count)::bigint  AS comment_count,
       sum(feedback_count)::bigint AS feedback_count,
       count(*)::bigint            AS rated_messages
  FROM llmbase.feedback_summary
 GROUP BY tenant_id, conversation_id;
COMMENT ON VIEW llmbase.conversation_feedback IS 'Feedback totals per conversation (security_invoker: RLS of the caller).';

-- ---------------------------------------------------------------------------------------
-- RLS. Conversations: a user reads their own and the tenant's shared ones (user_id NULL)
-- and writes their own; tenant-wide scope reads and writes all of the tenant.
ALTER TABLE llmbase.conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.conversations FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (user_id IS NULL OR user_id = (SELECT llmbase.current_user_id()) OR (SELECT llmbase.tenant_wide())));
CREATE POLICY tenant_insert ON llmbase.conversations FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_update ON llmbase.conversations FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_delete ON llmbase.conversations FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.conversations TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- Messages follow their conversation's visibility; a user may add messages to their own
-- conversations and to shared ones.
CREATE FUNCTION llmbase.conversation_visible(p_tenant uuid, p_conversation uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT EXISTS (SELECT 1 FROM llmbase.conversations c
                    WHERE c.tenant_id = p_tenant AND c.id = p_conversation)
$$;

ALTER TABLE llmbase.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.messages FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND llmbase.conversation_visible(tenant_id, conversation_id));
CREATE POLICY tenant_insert ON llmbase.messages FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id())
                AND llmbase.conversation_visible(tenant_id, conversation_id)
                AND (user_id IS NULL OR ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id()))));
CREATE POLICY tenant_update ON llmbase.messages FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY tenant_delete ON llmbase.messages FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.messages TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- Feedback: a user rates messages they can see and manages their own ratings. The message
-- must be visible and belong to the named conversation: checking the conversation alone let
-- a user pair another user's private message with a visible conversation, writing into
-- (and then reading) that message's summary.
CREATE FUNCTION llmbase.message_visible(p_tenant uuid, p_conversation uuid, p_message uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT EXISTS (SELECT 1 FROM llmbase.messages m
                    WHERE m.tenant_id = p_tenant AND m.id = p_message
                      AND m.conversation_id = p_conversation)
$$;

ALTER TABLE llmbase.feedback ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.feedback FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.feedback FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_insert ON llmbase.feedback FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id()))
                AND llmbase.message_visible(tenant_id, conversation_id, message_id));
CREATE POLICY tenant_update ON llmbase.feedback FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id()))
                AND llmbase.message_visible(tenant_id, conversation_id, message_id));
CREATE POLICY tenant_delete ON llmbase.feedback FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.feedback TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- The summary is written only by its trigger; readers see summaries of visible messages.
ALTER TABLE llmbase.feedback_summary ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.feedback_summary FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.feedback_summary FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND llmbase.conversation_visible(tenant_id, conversation_id));
CREATE POLICY admin_all ON llmbase.feedback_summary TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.conversations, llmbase.messages, llmbase.feedback
    TO llmbase_app;
GRANT SELECT ON llmbase.feedback_summary, llmbase.conversation_feedback TO llmbase_app;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.conversations, llmbase.messages, llmbase.feedback
            TO authenticated;
        GRANT SELECT ON llmbase.feedback_summary, llmbase.conversation_feedback TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.conversations, llmbase.messages, llmbase.feedback,
            llmbase.feedback_summary TO service_role;
        GRANT SELECT ON llmbase.conversation_feedback TO service_role;
    END IF;
END
$$;

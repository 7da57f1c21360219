-- llmbase 0008: the append-only audit log (seed 003 audit_logs).
--
-- Every administrative change writes who, what, when, before and after:
--   * row changes of the administrative tables (tenants, users, API keys, settings, price
--     overrides, collections, rate limits, budgets) by a row trigger, whatever path made them
--     (SDK, SQL, PostgREST); a cascaded deletion is summarised by its parent's row;
--   * events that are not one row (deletions of a tenant or user, exports, archive runs) by
--     llmbase.audit_event(...), in the same transaction as the work.
-- The application role may insert and read (its tenant's rows), never update, delete or
-- truncate. Only the operator's erasure functions (deleting a tenant or a user) remove or
-- redact entries, and they record that they did.

CREATE TABLE llmbase.audit_log (
    id            uuid NOT NULL DEFAULT llmbase.uuid7(),
    -- NULL: an operator-level event (creating or deleting a tenant, cross-tenant work).
    tenant_id     uuid,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Who: llmbase.actor (set by the SDK from Settings.actor / the HTTP API's key), else
    -- 'operator', 'user:<id>', 'service' (tenant-wide backend), 'jwt:<sub>', 'sql'.
    actor         text NOT NULL,
    actor_user_id uuid,
    db_user       text NOT NULL DEFAULT session_user,
    action        text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    object_type   text NOT NULL CHECK (length(object_type) BETWEEN 1 AND 100),
    object_id     text CHECK (length(object_id) <= 500),
    before        jsonb,
    after         jsonb,
    details       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (id)
);
COMMENT ON TABLE llmbase.audit_log IS
    'Append-only audit log: who changed what, when, before and after (seed 003 audit_logs).';
CREATE INDEX audit_log_tenant_at ON llmbase.audit_log (tenant_id, at DESC);
CREATE INDEX audit_log_actor ON llmbase.audit_log (tenant_id, actor, at DESC);
CREATE INDEX audit_log_object ON llmbase.audit_log (tenant_id, object_type, object_id, at DESC);
CREATE INDEX audit_log_action ON llmbase.audit_log (tenant_id, action, at DESC);
CREATE INDEX audit_log_actor_user ON llmbase.audit_log (tenant_id, actor_user_id)
    WHERE actor_user_id IS NOT NULL;

-- Who acts, from the transaction's context (called in the caller's context, never inside a
-- function that changes llmbase.admin).
CREATE FUNCTION llmbase.audit_actor() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog
AS $$
DECLARE
    named text := nullif(current_setting('llmbase.actor', true), '');
    claims jsonb := llmbase.jwt_claims();
    uid uuid;
BEGIN
    IF named IS NOT NULL THEN
        RETURN left(named, 200);
    ELSIF claims IS NOT NULL THEN
        RETURN 'jwt:' || coalesce(claims->>'sub', claims->>'role', '?');
    ELSIF llmbase.admin_mode() THEN
        RETURN 'operator';
    END IF;
    uid := llmbase.current_user_id();
    IF uid IS NOT NULL THEN
        RETURN 'user:' || uid;
    ELSIF llmbase.current_tenant_id() IS NOT NULL THEN
        RETURN 'service';
    END IF;
    RETURN 'sql';
END $$;

-- The one writer of audit rows: runs as the owner in admin scope, callable only by the
-- owner's own functions (EXECUTE revoked from PUBLIC below).
CREATE FUNCTION llmbase.audit_write(
    p_tenant uuid, p_actor text, p_actor_user uuid, p_action text, p_object_type text,
    p_object_id text, p_before jsonb, p_after jsonb, p_details jsonb
) RETURNS uuid
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog
    SET llmbase.admin = 'on'
AS $$
    INSERT INTO llmbase.audit_log
        (tenant_id, actor, actor_user_id, db_user, action, object_type, object_id, before, after, details)
    VALUES (p_tenant, p_actor, p_actor_user, session_user, p_action, p_object_type, p_object_id,
            p_before, p_after, coalesce(p_details, '{}'))
    RETURNING id
$$;
REVOKE ALL ON FUNCTION llmbase.audit_write(uuid, text, uuid, text, text, text, jsonb, jsonb, jsonb) FROM PUBLIC;

-- An event that is not a single row change. In a tenant scope the entry belongs to that
-- tenant; in operator scope to p_tenant (NULL: operator-level).
CREATE FUNCTION llmbase.audit_event(
    p_action text, p_object_type text, p_object_id text,
    p_before jsonb DEFAULT NULL, p_after jsonb DEFAULT NULL, p_details jsonb DEFAULT '{}',
    p_tenant uuid DEFAULT NULL
) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog
AS $$
DECLARE
    tid uuid;
BEGIN
    IF llmbase.admin_mode() AND pg_has_role(session_user, 'llmbase_admin', 'MEMBER') THEN
        tid := p_tenant;
    ELSE
        tid := llmbase.current_tenant_id();
        IF tid IS NULL THEN
            RAISE EXCEPTION 'audit_event needs a tenant scope' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF p_tenant IS NOT NULL AND p_tenant <> tid THEN
            RAISE EXCEPTION 'audit_event: p_tenant is another tenant' USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF p_details IS NOT NULL AND jsonb_typeof(p_details) <> 'object' THEN
        RAISE EXCEPTION 'details must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN llmbase.audit_write(tid, llmbase.audit_actor(), llmbase.current_user_id(), p_action,
                               p_object_type, p_object_id, p_before, p_after, p_details);
END $$;
COMMENT ON FUNCTION llmbase.audit_event(text, text, text, jsonb, jsonb, jsonb, uuid) IS
    'Record an administrative event (action like ''tenant.delete'') in the audit log.';

-- Is the tenant (or the user) of a deleted row gone? Then the row went by cascade. Looked
-- up in admin scope: visibility under RLS must not decide it.
CREATE FUNCTION llmbase.audit_owner_gone(p_tenant uuid, p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog
    SET llmbase.admin = 'on'
AS $$
    SELECT NOT EXISTS (SELECT FROM llmbase.tenants WHERE id = p_tenant)
        OR (p_user IS NOT NULL
            AND NOT EXISTS (SELECT FROM llmbase.users WHERE tenant_id = p_tenant AND id = p_user))
$$;
REVOKE ALL ON FUNCTION llmbase.audit_owner_gone(uuid, uuid) FROM PUBLIC;

-- Row trigger: TG_ARGV[0] = object type, TG_ARGV[1] = key columns (comma-separated) forming
-- object_id, TG_ARGV[2] = columns left out of before/after (secrets, bookkeeping; an update
-- that changes only those is not recorded).
CREATE FUNCTION llmbase.audit_row_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog
AS $$
DECLARE
    ignored text[] := CASE WHEN TG_NARGS > 2 AND TG_ARGV[2] <> '' THEN string_to_array(TG_ARGV[2], ',') ELSE '{}' END;
    b jsonb;
    a jsonb;
    row_ jsonb;
    tid uuid;
    oid text;
    changed text[];
BEGIN
    -- An operator's deletion of a tenant or user records one summary entry of its own
    -- (llmbase.ops) and turns row entries off for its transaction; only the operator can.
    IF coalesce(current_setting('llmbase.audit_rows', true), '') = 'off' AND llmbase.admin_mode()
       AND pg_has_role(session_user, 'llmbase_admin', 'MEMBER') THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN b := to_jsonb(OLD) - ignored; END IF;
    IF TG_OP <> 'DELETE' THEN a := to_jsonb(NEW) - ignored; END IF;
    IF TG_OP = 'UPDATE' THEN
        IF a = b THEN
            RETURN NULL;
        END IF;
        SELECT array_agg(k ORDER BY k) INTO changed
          FROM jsonb_object_keys(a) k WHERE a->k IS DISTINCT FROM b->k;
    END IF;
    row_ := coalesce(a, b);
    IF TG_TABLE_NAME = 'tenants' THEN
        -- A tenant's deletion outlives the tenant: an operator-level entry.
        tid := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE (row_->>'id')::uuid END;
    ELSE
        tid := (row_->>'tenant_id')::uuid;
    END IF;
    -- Rows deleted by a cascade (their tenant or user went in the same statement) are
    -- summarised by the deletion that caused them.
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME <> 'tenants'
       AND llmbase.audit_owner_gone(tid, CASE WHEN TG_TABLE_NAME = 'users' THEN NULL
                                             ELSE llmbase.safe_uuid(row_->>'user_id') END) THEN
        RETURN NULL;
    END IF;
    SELECT string_agg(coalesce(row_->>k, ''), '/' ORDER BY ord) INTO oid
      FROM unnest(string_to_array(TG_ARGV[1], ',')) WITH ORDINALITY AS t(k, ord);
    PERFORM llmbase.audit_write(
        tid, llmbase.audit_actor(), llmbase.current_user_id(),
        TG_ARGV[0] || '.' || CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,
        TG_ARGV[0], oid, b, a,
        CASE WHEN changed IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('changed', to_jsonb(changed)) END);
    RETURN NULL;
END $$;

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.tenants
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('tenant', 'id', 'updated_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.users
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('user', 'id', 'updated_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.api_keys
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('api_key', 'id', 'secret_hash,last_used_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.tenant_settings
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('settings', 'tenant_id', 'updated_at,version');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.model_prices
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('price', 'provider,model', 'updated_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.collections
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('collection', 'id', '');
DO $$
BEGIN
    IF to_regclass('llmbase.rate_limits') IS NOT NULL THEN
        CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.rate_limits
            FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('rate_limit', 'id', 'updated_at');
    END IF;
    IF to_regclass('llmbase.budgets') IS NOT NULL THEN
        CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON llmbase.budgets
            FOR EACH ROW EXECUTE FUNCTION llmbase.audit_row_change('budget', 'id', 'updated_at');
    END IF;
END $$;

-- Append-only, even for the owner: changes need the erasure functions below.
CREATE FUNCTION llmbase.audit_log_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    IF coalesce(current_setting('llmbase.audit_erase', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'llmbase.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON llmbase.audit_log
    FOR EACH ROW EXECUTE FUNCTION llmbase.audit_log_immutable();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON llmbase.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.audit_log_immutable();

-- Erasure (operator only): a deleted tenant's entries go; a deleted user's entries keep what
-- happened but lose who and the row images. Each records itself.
CREATE FUNCTION llmbase.erase_audit_tenant(p_tenant uuid) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog
    SET llmbase.admin = 'on'
    SET llmbase.audit_erase = 'on'
AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM llmbase.audit_log WHERE tenant_id = p_tenant;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION llmbase.erase_audit_tenant(uuid) FROM PUBLIC;

CREATE FUNCTION llmbase.erase_audit_user(p_tenant uuid, p_user uuid) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog
    SET llmbase.admin = 'on'
    SET llmbase.audit_erase = 'on'
AS $$
DECLARE
    n bigint;
BEGIN
    UPDATE llmbase.audit_log
       SET actor_user_id = NULL,
           actor = CASE WHEN actor = 'user:' || p_user THEN 'user:erased' ELSE actor END,
           before = CASE WHEN before IS NULL THEN NULL ELSE '{"erased": true}'::jsonb END,
           after = CASE WHEN after IS NULL THEN NULL ELSE '{"erased": true}'::jsonb END,
           object_id = CASE WHEN object_type = 'user' AND object_id = p_user::text THEN 'erased' ELSE object_id END,
           details = details || '{"erased": true}'
     WHERE tenant_id = p_tenant
       AND (actor_user_id = p_user
            OR (object_type = 'user' AND object_id = p_user::text)
            OR before->>'user_id' = p_user::text OR after->>'user_id' = p_user::text);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION llmbase.erase_audit_user(uuid, uuid) FROM PUBLIC;

ALTER TABLE llmbase.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.audit_log FORCE ROW LEVEL SECURITY;
-- A tenant-wide backend reads its tenant's log; a user reads the entries of their own actions.
CREATE POLICY tenant_read ON llmbase.audit_log FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR actor_user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_insert ON llmbase.audit_log FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id())
                AND actor_user_id IS NOT DISTINCT FROM (SELECT llmbase.current_user_id()));
CREATE POLICY admin_all ON llmbase.audit_log TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

REVOKE ALL ON FUNCTION llmbase.audit_actor() FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.audit_event(text, text, text, jsonb, jsonb, jsonb, uuid) FROM PUBLIC;
GRANT SELECT, INSERT ON llmbase.audit_log TO llmbase_app;
GRANT EXECUTE ON FUNCTION llmbase.audit_event(text, text, text, jsonb, jsonb, jsonb, uuid) TO llmbase_app;
GRANT EXECUTE ON FUNCTION llmbase.audit_actor() TO llmbase_app;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON llmbase.audit_log TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT ON llmbase.audit_log TO service_role;
        GRANT EXECUTE ON FUNCTION llmbase.audit_event(text, text, text, jsonb, jsonb, jsonb, uuid) TO service_role;
    END IF;
END $$;

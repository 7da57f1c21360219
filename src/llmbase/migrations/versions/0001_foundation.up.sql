-- llmbase 0001: schema, roles, context functions, tenants, users, profiles, settings, API keys.
-- Every tenant table: tenant_id first in the primary key, RLS enabled and forced, policies
-- that fail closed when no tenant is set. Objects live in schema llmbase.

CREATE SCHEMA IF NOT EXISTS llmbase;
COMMENT ON SCHEMA llmbase IS 'llmbase: the LLM application backend (stable interface; see docs/schema.md)';

CREATE EXTENSION IF NOT EXISTS vector;

-- Roles are cluster-wide: create them once, never fail when they exist.
-- Two databases of one cluster may migrate at once (the advisory lock is per database):
-- a concurrent creation of the same role is not an error.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'llmbase_app') THEN
        BEGIN
            CREATE ROLE llmbase_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'llmbase_admin') THEN
        BEGIN
            CREATE ROLE llmbase_admin NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;
-- The migrating role may switch to the app role (SET ROLE) and enter admin scope.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'llmbase_app', 'MEMBER') THEN
        EXECUTE format('GRANT llmbase_app TO %I', current_user);
    END IF;
    IF NOT pg_has_role(current_user, 'llmbase_admin', 'MEMBER') THEN
        EXECUTE format('GRANT llmbase_admin TO %I', current_user);
    END IF;
END
$$;

REVOKE ALL ON SCHEMA llmbase FROM PUBLIC;
GRANT USAGE ON SCHEMA llmbase TO llmbase_app;

-- ---------------------------------------------------------------------------------------
-- Ids: time-ordered UUIDv7 (PostgreSQL 18 has uuidv7(); this works on 15+ as well).
CREATE FUNCTION llmbase.uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid
$$;
COMMENT ON FUNCTION llmbase.uuid7() IS 'A UUIDv7 (RFC 9562): 48-bit Unix ms timestamp then random bits.';

-- ---------------------------------------------------------------------------------------
-- Context. The SDK sets llmbase.tenant_id / llmbase.user_id with set_config(..., true) at the
-- start of every transaction. PostgREST (Supabase) clients carry request.jwt.claims instead:
-- when claims are present they are the only source (tenant from claim tenant_id or
-- app_metadata.tenant_id, user from sub mapped to users.auth_id).

CREATE FUNCTION llmbase.jwt_claims() RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
DECLARE
    raw text := nullif(current_setting('request.jwt.claims', true), '');
BEGIN
    IF raw IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN raw::jsonb;
EXCEPTION WHEN others THEN
    RETURN '{}'::jsonb;  -- unparsable claims: present but grant nothing (fail closed)
END
$$;

-- Private map from an external auth identity to the llmbase user: read only by the
-- SECURITY DEFINER context functions (no client role has any privilege on it).
CREATE TABLE llmbase.auth_identities (
    auth_id   text NOT NULL,
    tenant_id uuid NOT NULL,
    user_id   uuid NOT NULL,
    PRIMARY KEY (auth_id, tenant_id)
);
COMMENT ON TABLE llmbase.auth_identities IS 'Private: auth_id -> (tenant, user), maintained from users by trigger.';

CREATE FUNCTION llmbase.safe_uuid(value text) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN value::uuid;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION llmbase.current_tenant_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog
AS $$
DECLARE
    claims jsonb := llmbase.jwt_claims();
    claimed text;
    found uuid;
BEGIN
    IF claims IS NULL THEN
        RETURN llmbase.safe_uuid(nullif(current_setting('llmbase.tenant_id', true), ''));
    END IF;
    claimed := coalesce(claims ->> 'tenant_id', claims -> 'app_metadata' ->> 'tenant_id');
    IF claimed IS NOT NULL THEN
        -- The claim picks one of the subject's tenants; it never grants membership (a stale,
        -- forged or misconfigured claim for a tenant where sub has no user yields no tenant).
        SELECT i.tenant_id INTO found
          FROM llmbase.auth_identities i
         WHERE i.auth_id = claims ->> 'sub'
           AND i.tenant_id = llmbase.safe_uuid(claimed);
        RETURN found;
    END IF;
    -- No tenant claim: the user's tenant, when the auth identity belongs to exactly one.
    SELECT min(i.tenant_id::text)::uuid INTO found
      FROM llmbase.auth_identities i
     WHERE i.auth_id = claims ->> 'sub'
    HAVING count(*) = 1;
    RETURN found;
END
$$;
COMMENT ON FUNCTION llmbase.current_tenant_id() IS
    'Tenant of the current transaction, or NULL (every policy then matches no row).';

CREATE FUNCTION llmbase.current_user_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog
AS $$
DECLARE
    claims jsonb := llmbase.jwt_claims();
    found uuid;
BEGIN
    IF claims IS NULL THEN
        RETURN llmbase.safe_uuid(nullif(current_setting('llmbase.user_id', true), ''));
    END IF;
    SELECT i.user_id INTO found
      FROM llmbase.auth_identities i
     WHERE i.auth_id = claims ->> 'sub'
       AND i.tenant_id = llmbase.current_tenant_id();
    RETURN found;
END
$$;
COMMENT ON FUNCTION llmbase.current_user_id() IS
    'User of the current transaction, or NULL (tenant-wide scope for the SDK, nobody for JWT clients).';

-- Tenant-wide scope: the SDK acting for the whole tenant (a backend), never a JWT client.
CREATE FUNCTION llmbase.tenant_wide() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT llmbase.jwt_claims() IS NULL
       AND nullif(current_setting('llmbase.tenant_id', true), '') IS NOT NULL
       AND nullif(current_setting('llmbase.user_id', true), '') IS NULL
$$;

-- Admin scope: only members of llmbase_admin (the schema owner) that asked for it.
CREATE FUNCTION llmbase.admin_mode() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT coalesce(current_setting('llmbase.admin', true), '') = 'on'
$$;

-- Context setters for SQL clients (the seeds' set_guild_context / set_user_context /
-- clear_context). Transaction-local by design: call them inside BEGIN ... COMMIT.
CREATE FUNCTION llmbase.set_tenant_context(p_tenant_id uuid) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
    SELECT set_config('llmbase.tenant_id', coalesce(p_tenant_id::text, ''), true),
           set_config('llmbase.user_id', '', true);
$$;

CREATE FUNCTION llmbase.set_user_context(p_user_id uuid, p_tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    t uuid := coalesce(p_tenant_id, llmbase.current_tenant_id());
BEGIN
    IF t IS NULL THEN
        RAISE EXCEPTION 'set_user_context: set the tenant first (llmbase.set_tenant_context)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('llmbase.tenant_id', t::text, true);
    PERFORM set_config('llmbase.user_id', coalesce(p_user_id::text, ''), true);
END
$$;

CREATE FUNCTION llmbase.clear_context() RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
    SELECT set_config('llmbase.tenant_id', '', true),
           set_config('llmbase.user_id', '', true),
           set_config('llmbase.admin', '', true);
$$;

-- updated_at maintained by trigger on every mutable table.
CREATE FUNCTION llmbase.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------
-- Tenants.
CREATE TABLE llmbase.tenants (
    id          uuid PRIMARY KEY DEFAULT llmbase.uuid7(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llmbase.tenants IS 'One row per tenant (organisation, Discord guild, workspace).';
CREATE TRIGGER tenants_touch BEFORE UPDATE ON llmbase.tenants
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

-- The default tenant and user: a single-tenant app never thinks about tenancy.
INSERT INTO llmbase.tenants (id, slug, name)
VALUES ('00000000-0000-0000-0000-000000000001', 'default', 'Default tenant');

-- ---------------------------------------------------------------------------------------
-- Users: external_id is the app's own id (Discord user, email, account id); auth_id is the
-- identity provider's subject (Supabase auth.uid()).
CREATE TABLE llmbase.users (
    tenant_id    uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                 REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT llmbase.uuid7(),
    external_id  text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 256),
    auth_id      text CHECK (length(auth_id) BETWEEN 1 AND 256),
    email        text CHECK (length(email) <= 320),
    display_name text CHECK (length(display_name) <= 200),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id),
    UNIQUE (tenant_id, auth_id)
);
COMMENT ON TABLE llmbase.users IS 'End users of a tenant; the seeds'' users / Discord users.';
CREATE TRIGGER users_touch BEFORE UPDATE ON llmbase.users
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

INSERT INTO llmbase.users (tenant_id, id, external_id, display_name)
VALUES ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001',
        'default', 'Default user');

-- Keep the private auth map in step with users.auth_id.
CREATE FUNCTION llmbase.sync_auth_identity() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.auth_id IS NOT NULL THEN
        DELETE FROM llmbase.auth_identities WHERE auth_id = OLD.auth_id AND tenant_id = OLD.tenant_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.auth_id IS NOT NULL THEN
        INSERT INTO llmbase.auth_identities (auth_id, tenant_id, user_id)
        VALUES (NEW.auth_id, NEW.tenant_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_auth_identity AFTER INSERT OR DELETE OR UPDATE OF auth_id ON llmbase.users
    FOR EACH ROW EXECUTE FUNCTION llmbase.sync_auth_identity();

-- ---------------------------------------------------------------------------------------
-- User profiles: preferences plus activity statistics maintained by triggers (seed 003's
-- user_profiles + update_user_profile()).
CREATE TABLE llmbase.user_profiles (
    tenant_id           uuid NOT NULL DEFAULT llmbase.current_tenant_id(),
    user_id             uuid NOT NULL,
    preferences         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(preferences) = 'object'),
    conversation_count  bigint NOT NULL DEFAULT 0,
    message_count       bigint NOT NULL DEFAULT 0,
    request_count       bigint NOT NULL DEFAULT 0,
    total_tokens        bigint NOT NULL DEFAULT 0,
    total_cost_usd      numeric(20, 10) NOT NULL DEFAULT 0,
    feedback_count      bigint NOT NULL DEFAULT 0,
    first_active_at     timestamptz,
    last_active_at      timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.user_profiles IS 'Per-user preferences and activity statistics (always current).';
CREATE TRIGGER user_profiles_touch BEFORE UPDATE OF preferences ON llmbase.user_profiles
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

-- Every user has a profile from birth.
CREATE FUNCTION llmbase.create_user_profile() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
BEGIN
    INSERT INTO llmbase.user_profiles (tenant_id, user_id) VALUES (NEW.tenant_id, NEW.id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_profile AFTER INSERT ON llmbase.users
    FOR EACH ROW EXECUTE FUNCTION llmbase.create_user_profile();
INSERT INTO llmbase.user_profiles (tenant_id, user_id)
VALUES ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001');

-- Activity bump used by the stores' triggers (seed 003's update_user_profile()).
CREATE FUNCTION llmbase.bump_user_activity(
    p_tenant_id uuid, p_user_id uuid,
    p_conversations bigint DEFAULT 0, p_messages bigint DEFAULT 0, p_requests bigint DEFAULT 0,
    p_tokens bigint DEFAULT 0, p_cost numeric DEFAULT 0, p_feedback bigint DEFAULT 0,
    p_at timestamptz DEFAULT now()
) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
    UPDATE llmbase.user_profiles
       SET conversation_count = conversation_count + p_conversations,
           message_count      = message_count + p_messages,
           request_count      = request_count + p_requests,
           total_tokens       = total_tokens + p_tokens,
           total_cost_usd     = total_cost_usd + p_cost,
           feedback_count     = feedback_count + p_feedback,
           first_active_at    = coalesce(least(first_active_at, p_at), p_at),
           last_active_at     = greatest(coalesce(last_active_at, p_at), p_at)
     WHERE tenant_id = p_tenant_id AND user_id = p_user_id;
$$;
REVOKE ALL ON FUNCTION llmbase.bump_user_activity(uuid, uuid, bigint, bigint, bigint, bigint, numeric, bigint, timestamptz) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Tenant settings (seed 003's server_configs): one JSON document per tenant, validated by
-- the SDK's schema (llmbase.settings) and checked here for shape; versioned for optimistic
-- concurrency.
CREATE TABLE llmbase.tenant_settings (
    tenant_id   uuid PRIMARY KEY DEFAULT llmbase.current_tenant_id()
                REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    settings    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    version     integer NOT NULL DEFAULT 1,
    updated_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llmbase.tenant_settings IS 'Typed per-tenant settings document (seed 003 server_configs).';
CREATE TRIGGER tenant_settings_touch BEFORE UPDATE ON llmbase.tenant_settings
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

-- ---------------------------------------------------------------------------------------
-- API keys: only a SHA-256 of the secret is stored; the key's id travels in the key itself
-- so authentication is one primary-key lookup.
CREATE TABLE llmbase.api_keys (
    tenant_id    uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                 REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT llmbase.uuid7(),
    user_id      uuid,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix       text NOT NULL,
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes       text[] NOT NULL DEFAULT '{read}'
                 CHECK (scopes <@ ARRAY['ingest', 'read', 'write', 'admin']::text[] AND cardinality(scopes) > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.api_keys IS 'API keys: hash only; secret shown once at creation.';

-- Authenticate a presented key id + secret hash. Runs before any tenant is known, so it is
-- SECURITY DEFINER with a pinned search_path and returns only the matching, live key.
CREATE FUNCTION llmbase.authenticate_api_key(p_key_id uuid, p_secret_hash bytea)
RETURNS TABLE (key_id uuid, tenant_id uuid, user_id uuid, scopes text[])
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
    UPDATE llmbase.api_keys k
       SET last_used_at = now()
     WHERE k.id = p_key_id
       AND k.secret_hash = p_secret_hash
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at > now())
    RETURNING k.id, k.tenant_id, k.user_id, k.scopes;
$$;
REVOKE ALL ON FUNCTION llmbase.authenticate_api_key(uuid, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llmbase.authenticate_api_key(uuid, bytea) TO llmbase_app;

-- Resolve a tenant slug before a tenant scope exists (the SDK's client.tenant('acme')).
CREATE FUNCTION llmbase.tenant_id_by_slug(p_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
    SELECT id FROM llmbase.tenants WHERE slug = p_slug
$$;
REVOKE ALL ON FUNCTION llmbase.tenant_id_by_slug(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llmbase.tenant_id_by_slug(text) TO llmbase_app;

-- ---------------------------------------------------------------------------------------
-- Row level security: enabled and forced everywhere; tenant policies for every role,
-- an admin policy only for members of llmbase_admin that switched admin mode on.
-- Row ownership is written out in each policy as
--   read:  user_id IS NULL OR user_id = (SELECT current_user_id()) OR (SELECT tenant_wide())
--   write: (SELECT tenant_wide()) OR user_id = (SELECT current_user_id())
-- with every context call in a scalar sub-select, so PostgreSQL evaluates it once per query
-- (an InitPlan), not once per row.
ALTER TABLE llmbase.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.tenants FOR SELECT
    USING (id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY tenant_update ON llmbase.tenants FOR UPDATE
    USING (id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY admin_all ON llmbase.tenants TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.auth_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.auth_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY definer_only ON llmbase.auth_identities TO llmbase_admin USING (true) WITH CHECK (true);

ALTER TABLE llmbase.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.users FORCE ROW LEVEL SECURITY;
-- The SDK (a backend) sees the tenant's users; a JWT client sees only its own user row, so
-- one end user never reads another's email or auth id.
CREATE POLICY tenant_read ON llmbase.users FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.jwt_claims()) IS NULL OR id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_insert ON llmbase.users FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY tenant_update ON llmbase.users FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR id = (SELECT llmbase.current_user_id())))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_delete ON llmbase.users FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.users TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.user_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.user_profiles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.user_profiles FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_update ON llmbase.user_profiles FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.user_profiles TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.tenant_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.tenant_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.tenant_settings FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY tenant_write ON llmbase.tenant_settings FOR ALL
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.tenant_settings TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_all ON llmbase.api_keys FOR ALL
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.api_keys TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- ---------------------------------------------------------------------------------------
-- Privileges of the application role: data manipulation only, no TRUNCATE, no DDL,
-- nothing on the private identity map.
GRANT SELECT, UPDATE ON llmbase.tenants TO llmbase_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.users TO llmbase_app;
GRANT SELECT, UPDATE ON llmbase.user_profiles TO llmbase_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.tenant_settings TO llmbase_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.api_keys TO llmbase_app;

REVOKE ALL ON FUNCTION llmbase.set_tenant_context(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.set_user_context(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.clear_context() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llmbase.set_tenant_context(uuid) TO llmbase_app;
GRANT EXECUTE ON FUNCTION llmbase.set_user_context(uuid, uuid) TO llmbase_app;
GRANT EXECUTE ON FUNCTION llmbase.clear_context() TO llmbase_app;

-- Supabase / PostgREST roles, when this server has them: anon gets nothing here (public
-- documents arrive with the document store); authenticated reads its tenant and its own
-- rows; service_role (BYPASSRLS on Supabase) gets everything.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        GRANT USAGE ON SCHEMA llmbase TO anon;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT USAGE ON SCHEMA llmbase TO authenticated;
        GRANT SELECT ON llmbase.tenants, llmbase.users, llmbase.user_profiles, llmbase.tenant_settings
            TO authenticated;
        GRANT UPDATE (display_name, metadata) ON llmbase.users TO authenticated;
        GRANT UPDATE (preferences) ON llmbase.user_profiles TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT USAGE ON SCHEMA llmbase TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.tenants, llmbase.users, llmbase.user_profiles,
            llmbase.tenant_settings, llmbase.api_keys TO service_role;
        GRANT EXECUTE ON FUNCTION llmbase.set_tenant_context(uuid), llmbase.set_user_context(uuid, uuid),
            llmbase.clear_context() TO service_role;
    END IF;
END
$$;

-- Reverse of 0001. The vector extension and the llmbase schema (which holds the migration
-- version table) stay; the roles are dropped unless another database still uses them.
DROP TABLE llmbase.api_keys;
DROP TABLE llmbase.tenant_settings;
DROP TABLE llmbase.user_profiles;
DROP TABLE llmbase.users;
DROP TABLE llmbase.auth_identities;
DROP TABLE llmbase.tenants;

DROP FUNCTION llmbase.tenant_id_by_slug(text);
DROP FUNCTION llmbase.authenticate_api_key(uuid, bytea);
DROP FUNCTION llmbase.bump_user_activity(uuid, uuid, bigint, bigint, bigint, bigint, numeric, bigint, timestamptz);
DROP FUNCTION llmbase.create_user_profile();
DROP FUNCTION llmbase.sync_auth_identity();
DROP FUNCTION llmbase.touch_updated_at();
DROP FUNCTION llmbase.clear_context();
DROP FUNCTION llmbase.set_user_context(uuid, uuid);
DROP FUNCTION llmbase.set_tenant_context(uuid);
DROP FUNCTION llmbase.admin_mode();
DROP FUNCTION llmbase.tenant_wide();
DROP FUNCTION llmbase.current_user_id();
DROP FUNCTION llmbase.current_tenant_id();
DROP FUNCTION llmbase.safe_uuid(text);
DROP FUNCTION llmbase.jwt_claims();
DROP FUNCTION llmbase.uuid7();

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role', 'llmbase_app'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA llmbase FROM %I', r);
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['llmbase_app', 'llmbase_admin'] LOOP
        BEGIN
            EXECUTE format('DROP ROLE IF EXISTS %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            NULL;  -- still granted in another database of this cluster: keep it
        END;
    END LOOP;
END
$$;

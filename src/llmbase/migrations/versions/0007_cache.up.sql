-- llmbase 0007: the response cache (seed 003's query_cache + clean_expired_cache(), done
-- per tenant).
--
-- cache_entries  one stored model response per (tenant, namespace, request key, shape):
--                key_hash = sha256 of the canonical request (provider, model, request
--                type, messages / input and the parameters that change the answer);
--                stream says whether the response is a stream (its chunks, replayed as a
--                stream) or one body. params_hash = sha256 of the same without the prompt:
--                a semantic match only considers entries with the same params_hash, whose
--                prompt embedding is close enough. Usage and cost of the original call
--                are kept: a hit saves that cost. TTL by expires_at (NULL = no expiry);
--                hit_count / last_hit_at counted on each hit, put_count on each store.
--                Shared by the users of a tenant; a user scope reads, hits and stores,
--                only a tenant-wide scope (or the operator) deletes.
-- clean_expired_cache()
--                deletes expired entries (of the current tenant, or of every tenant in
--                operator scope); `llmbase cache clean` and `llmbase maintain` call it.

CREATE TABLE llmbase.cache_entries (
    tenant_id    uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                 REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT llmbase.uuid7(),
    namespace    text NOT NULL DEFAULT '' CHECK (length(namespace) <= 200),
    key_hash     bytea NOT NULL CHECK (length(key_hash) = 32),
    stream       boolean NOT NULL DEFAULT false,
    params_hash  bytea NOT NULL CHECK (length(params_hash) = 32),
    provider     text NOT NULL DEFAULT '' CHECK (length(provider) <= 100),
    model        text NOT NULL DEFAULT '' CHECK (length(model) <= 200),
    request_type text NOT NULL DEFAULT 'chat' CHECK (length(request_type) BETWEEN 1 AND 50),
    request      jsonb,
    response     jsonb NOT NULL,
    usage        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(usage) = 'object'),
    cost_usd     numeric(20, 10) CHECK (cost_usd >= 0),
    embedding    vector,
    hit_count    bigint NOT NULL DEFAULT 0 CHECK (hit_count >= 0),
    put_count    bigint NOT NULL DEFAULT 1 CHECK (put_count >= 1),
    last_hit_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, namespace, key_hash, stream)
);
COMMENT ON TABLE llmbase.cache_entries IS
    'Response cache: one stored model response per tenant, namespace, request key and shape (stream or body), with TTL, hit counts and the cost a hit saves.';
COMMENT ON COLUMN llmbase.cache_entries.key_hash IS 'sha256 of the canonical request (llmbase.cache.request_key).';
COMMENT ON COLUMN llmbase.cache_entries.params_hash IS 'sha256 of the canonical request without its prompt: semantic matches stay within it.';
COMMENT ON COLUMN llmbase.cache_entries.embedding IS 'Embedding of the prompt, for semantic matches (any dimension; compared within one params_hash).';
-- Cleaning expired entries without a scan.
CREATE INDEX cache_entries_expires ON llmbase.cache_entries (expires_at) WHERE expires_at IS NOT NULL;
-- Semantic candidates: the entries of one tenant, namespace and parameter set.
CREATE INDEX cache_entries_semantic ON llmbase.cache_entries (tenant_id, namespace, params_hash, stream)
    WHERE embedding IS NOT NULL;

ALTER TABLE llmbase.cache_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.cache_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.cache_entries FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY tenant_insert ON llmbase.cache_entries FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY tenant_update ON llmbase.cache_entries FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY tenant_delete ON llmbase.cache_entries FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.cache_entries TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- Expired entries of the visible tenants (RLS decides: one tenant, or all in operator
-- scope); at most p_limit rows per call when given. Returns the number deleted.
CREATE FUNCTION llmbase.clean_expired_cache(p_limit integer DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    n bigint;
BEGIN
    IF p_limit IS NOT NULL AND p_limit < 1 THEN
        RAISE EXCEPTION 'p_limit must be at least 1' USING ERRCODE = '22023';
    END IF;
    DELETE FROM llmbase.cache_entries c
     WHERE c.ctid = ANY (ARRAY(
         SELECT e.ctid FROM llmbase.cache_entries e
          WHERE e.expires_at IS NOT NULL AND e.expires_at <= now()
          LIMIT p_limit));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llmbase.clean_expired_cache(integer) IS
    'Delete expired response-cache entries (the current tenant''s; every tenant''s in operator scope); returns the count.';

REVOKE ALL ON FUNCTION llmbase.clean_expired_cache(integer) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.cache_entries TO llmbase_app;
GRANT EXECUTE ON FUNCTION llmbase.clean_expired_cache(integer) TO llmbase_app;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.cache_entries TO service_role;
        GRANT EXECUTE ON FUNCTION llmbase.clean_expired_cache(integer) TO service_role;
    END IF;
END
$$;

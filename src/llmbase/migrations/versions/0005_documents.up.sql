-- llmbase 0005: the document store for RAG (seeds 001 and 003: embeddings / documents,
-- match_embeddings / match_documents, delete_by_metadata, clear_all_embeddings).
--
-- collections  one per (tenant, name): embedding model, dimension, distance, storage
--              (vector or halfvec), index (HNSW with m / ef_construction, IVFFlat with
--              lists, or none), full-text language. Created and dropped only through
--              llmbase.create_collection / llmbase.drop_collection.
-- documents    source, title, external id, content hash (dedupe), metadata, owner: a user
--              (private) or NULL (shared with the tenant); is_public: readable by
--              anonymous PostgREST clients (seed 003's anonymous readers).
-- chunks       text, position, token count, embedding, metadata (the document's merged
--              with the chunk's), full-text vector. LIST-partitioned by collection: each
--              collection has its own partition with a dimension check and its own vector
--              index on the typed expression (embedding::vector(N)), so collections of
--              different dimensions live side by side and dropping one drops a partition.
-- retrievals / retrieval_results
--              every search: query, filter, mode, k, what it served (conversation,
--              message, request) and the chunks returned with score and rank.

-- ---------------------------------------------------------------------------------------
CREATE TABLE llmbase.collections (
    tenant_id            uuid NOT NULL REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id                   uuid NOT NULL DEFAULT llmbase.uuid7(),
    name                 text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    embedding_model      text CHECK (length(embedding_model) <= 200),
    dimension            integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    distance             text NOT NULL DEFAULT 'cosine' CHECK (distance IN ('cosine', 'l2', 'inner_product')),
    storage              text NOT NULL DEFAULT 'vector' CHECK (storage IN ('vector', 'halfvec')),
    index_type           text NOT NULL DEFAULT 'hnsw' CHECK (index_type IN ('hnsw', 'ivfflat', 'none')),
    hnsw_m               integer NOT NULL DEFAULT 16 CHECK (hnsw_m BETWEEN 2 AND 100),
    hnsw_ef_construction integer NOT NULL DEFAULT 64 CHECK (hnsw_ef_construction BETWEEN 4 AND 1000),
    ivfflat_lists        integer NOT NULL DEFAULT 100 CHECK (ivfflat_lists BETWEEN 1 AND 32768),
    language             regconfig NOT NULL DEFAULT 'english',
    partition_name       text NOT NULL UNIQUE,
    metadata             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    UNIQUE (id),
    -- pgvector indexes up to 2,000 dimensions of vector and 4,000 of halfvec.
    CHECK (index_type = 'none' OR dimension <= CASE storage WHEN 'vector' THEN 2000 ELSE 4000 END),
    CHECK (hnsw_ef_construction >= 2 * hnsw_m)
);
COMMENT ON TABLE llmbase.collections IS
    'Embedding collections: model, dimension, distance, storage and index of their chunks (one chunks partition each).';

CREATE TABLE llmbase.documents (
    tenant_id     uuid NOT NULL DEFAULT llmbase.current_tenant_id(),
    id            uuid NOT NULL DEFAULT llmbase.uuid7(),
    collection_id uuid NOT NULL,
    user_id       uuid DEFAULT llmbase.current_user_id(),
    is_public     boolean NOT NULL DEFAULT false,
    source        text CHECK (length(source) <= 2000),
    title         text CHECK (length(title) <= 2000),
    external_id   text CHECK (length(external_id) <= 2000),
    content_hash  text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    metadata      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    chunk_count   integer NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    token_count   bigint NOT NULL DEFAULT 0 CHECK (token_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, collection_id) REFERENCES llmbase.collections (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.documents IS
    'Source documents of a collection: private to user_id, or shared with the tenant when user_id is NULL; is_public for anonymous readers.';
-- Upsert by external id, per collection and owner (NULL owner = shared).
CREATE UNIQUE INDEX documents_external ON llmbase.documents
    (tenant_id, collection_id, (coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid)), external_id)
    WHERE external_id IS NOT NULL;
-- Dedupe by content hash (re-importing unchanged text writes nothing).
CREATE INDEX documents_hash ON llmbase.documents (tenant_id, collection_id, content_hash);
CREATE INDEX documents_user ON llmbase.documents (tenant_id, user_id) WHERE user_id IS NOT NULL;
-- Listing a collection's documents newest first, page by page (keyset on created_at, id).
CREATE INDEX documents_recent ON llmbase.documents (tenant_id, collection_id, created_at DESC, id DESC);
CREATE INDEX documents_metadata ON llmbase.documents USING gin (metadata jsonb_path_ops);
CREATE INDEX documents_public ON llmbase.documents (collection_id) WHERE is_public;
CREATE TRIGGER documents_touch BEFORE UPDATE ON llmbase.documents
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

CREATE TABLE llmbase.chunks (
    tenant_id      uuid NOT NULL DEFAULT llmbase.current_tenant_id(),
    collection_id  uuid NOT NULL,
    id             uuid NOT NULL DEFAULT llmbase.uuid7(),
    document_id    uuid NOT NULL,
    user_id        uuid DEFAULT llmbase.current_user_id(), -- the document's owner (denormalised for RLS and filters)
    is_public      boolean NOT NULL DEFAULT false, -- the document's flag (denormalised)
    position       integer NOT NULL CHECK (position >= 0),
    content        text NOT NULL,
    token_count    integer CHECK (token_count >= 0),
    metadata       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    embedding      vector,                         -- storage 'vector'
    embedding_half halfvec,                        -- storage 'halfvec'
    language       regconfig NOT NULL DEFAULT 'english',
    fts            tsvector GENERATED ALWAYS AS (to_tsvector(language, content)) STORED,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, collection_id, id),
    UNIQUE (tenant_id, collection_id, document_id, position),
    FOREIGN KEY (tenant_id, document_id) REFERENCES llmbase.documents (tenant_id, id) ON DELETE CASCADE,
    CHECK (embedding IS NULL OR embedding_half IS NULL)
) PARTITION BY LIST (collection_id);
COMMENT ON TABLE llmbase.chunks IS
    'Chunks of documents with their embedding and full-text vector; one partition per collection (chunks_<collection id>).';
CREATE INDEX chunks_document ON llmbase.chunks (tenant_id, document_id);
CREATE INDEX chunks_metadata ON llmbase.chunks USING gin (metadata jsonb_path_ops);
CREATE INDEX chunks_fts ON llmbase.chunks USING gin (fts);
CREATE INDEX chunks_user ON llmbase.chunks (tenant_id, user_id) WHERE user_id IS NOT NULL;

-- Under forced RLS, PostgreSQL turns a query's own condition into an index condition only
-- when its function is LEAKPROOF (otherwise the policy's conditions must run first), so
-- the metadata filters (jsonb @>, GIN jsonb_path_ops) and full-text matches (tsvector @@,
-- GIN) would scan the whole partition. Both functions return a boolean of their inputs and
-- raise no error that depends on the data, so they are marked LEAKPROOF where the
-- migrating role may do so (a superuser, as on the embedded server). Elsewhere (a managed
-- server) searches are still correct, with sequential scans for those conditions.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
        ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
    END IF;
END
$$;

-- The schema pgvector lives in (public on the embedded server, often extensions on
-- Supabase): functions pin search_path to pg_catalog and qualify vector objects with it.
CREATE FUNCTION llmbase.vector_schema() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'
$$;

-- The vector operator class of a collection (qualify with llmbase.vector_schema()).
CREATE FUNCTION llmbase.vector_opclass(p_storage text, p_distance text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT p_storage || CASE p_distance WHEN 'cosine' THEN '_cosine_ops' WHEN 'l2' THEN '_l2_ops'
                                        WHEN 'inner_product' THEN '_ip_ops' END
$$;

-- (Re)create the vector index of a collection's partition from its settings; returns the
-- index name. Used by create_collection and by `llmbase docs reindex`.
CREATE FUNCTION llmbase.build_collection_index(p_collection uuid) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    c llmbase.collections;
    idx text;
    col text;
    vs name := llmbase.vector_schema();
BEGIN
    SELECT * INTO c FROM llmbase.collections WHERE id = p_collection;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collection % not found', p_collection USING ERRCODE = 'no_data_found';
    END IF;
    idx := c.partition_name || '_vec';
    col := CASE c.storage WHEN 'vector' THEN 'embedding' ELSE 'embedding_half' END;
    EXECUTE format('DROP INDEX IF EXISTS llmbase.%I', idx);
    IF c.index_type = 'hnsw' THEN
        EXECUTE format('CREATE INDEX %I ON llmbase.%I USING hnsw ((%I::%I.%s(%s)) %I.%s) WITH (m = %s, ef_construction = %s)',
                       idx, c.partition_name, col, vs, c.storage, c.dimension,
                       vs, llmbase.vector_opclass(c.storage, c.distance), c.hnsw_m, c.hnsw_ef_construction);
    ELSIF c.index_type = 'ivfflat' THEN
        EXECUTE format('CREATE INDEX %I ON llmbase.%I USING ivfflat ((%I::%I.%s(%s)) %I.%s) WITH (lists = %s)',
                       idx, c.partition_name, col, vs, c.storage, c.dimension,
                       vs, llmbase.vector_opclass(c.storage, c.distance), c.ivfflat_lists);
    ELSE
        RETURN NULL;
    END IF;
    RETURN idx;
END
$$;
REVOKE ALL ON FUNCTION llmbase.build_collection_index(uuid) FROM PUBLIC;

-- Create a collection of the current tenant with its chunks partition and vector index.
-- Tenant-wide scope only (a backend: the SDK's tenant client, or SQL after
-- llmbase.set_tenant_context); runs as the schema owner, in admin mode inside the function
-- only (the SET clause is undone when it returns).
CREATE FUNCTION llmbase.create_collection(
    p_name text,
    p_dimension integer,
    p_distance text DEFAULT 'cosine',
    p_storage text DEFAULT 'vector',
    p_index_type text DEFAULT 'hnsw',
    p_hnsw_m integer DEFAULT 16,
    p_hnsw_ef_construction integer DEFAULT 64,
    p_ivfflat_lists integer DEFAULT 100,
    p_language regconfig DEFAULT 'english',
    p_embedding_model text DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}'
) RETURNS llmbase.collections
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
DECLARE
    t uuid := llmbase.current_tenant_id();
    c llmbase.collections;
    cid uuid := llmbase.uuid7();
    part text := 'chunks_' || replace(cid::text, '-', '');
    col text := CASE p_storage WHEN 'halfvec' THEN 'embedding_half' ELSE 'embedding' END;
    other text := CASE p_storage WHEN 'halfvec' THEN 'embedding' ELSE 'embedding_half' END;
BEGIN
    IF t IS NULL OR NOT llmbase.tenant_wide() THEN
        RAISE EXCEPTION 'creating a collection needs a tenant-wide scope'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO llmbase.collections (tenant_id, id, name, embedding_model, dimension, distance, storage,
        index_type, hnsw_m, hnsw_ef_construction, ivfflat_lists, language, partition_name, metadata)
    VALUES (t, cid, p_name, p_embedding_model, p_dimension, p_distance, p_storage, p_index_type, p_hnsw_m,
        p_hnsw_ef_construction, p_ivfflat_lists, p_language, part, coalesce(p_metadata, '{}'))
    RETURNING * INTO c;
    EXECUTE format('CREATE TABLE llmbase.%I PARTITION OF llmbase.chunks FOR VALUES IN (%L)', part, cid);
    EXECUTE format('ALTER TABLE llmbase.%I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE llmbase.%I FORCE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE llmbase.%I ADD CONSTRAINT %I CHECK (%I IS NULL AND (%I IS NULL OR %I.vector_dims(%I) = %s))',
                   part, part || '_dims', other, col, llmbase.vector_schema(), col, p_dimension);
    PERFORM llmbase.build_collection_index(cid);
    RETURN c;
END
$$;
COMMENT ON FUNCTION llmbase.create_collection(text, integer, text, text, text, integer, integer, integer, regconfig, text, jsonb) IS
    'Create a collection of the current tenant (tenant-wide scope) with its chunks partition and vector index.';

-- Drop a collection of the current tenant: its documents, chunks (the partition) and index.
CREATE FUNCTION llmbase.drop_collection(p_collection uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
DECLARE
    c llmbase.collections;
BEGIN
    IF NOT llmbase.tenant_wide() THEN
        RAISE EXCEPTION 'dropping a collection needs a tenant-wide scope'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO c FROM llmbase.collections
     WHERE id = p_collection AND tenant_id = llmbase.current_tenant_id();
    IF NOT FOUND THEN
        RETURN false;  -- missing and another tenant's look the same
    END IF;
    EXECUTE format('DROP TABLE llmbase.%I', c.partition_name);  -- the chunks, at once
    DELETE FROM llmbase.collections WHERE id = p_collection;       -- cascades to documents
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION llmbase.create_collection(text, integer, text, text, text, integer, integer, integer, regconfig, text, jsonb),
    llmbase.drop_collection(uuid) FROM PUBLIC;

-- Bulk loads: building an HNSW/IVFFlat index once over all rows is several times faster than
-- maintaining it row by row. add() suspends the vector index of a collection before a load
-- of at least 10,000 chunks that is at least as large as the collection, and restores it
-- afterwards (searches in between are exact: correct, slower). Tenant-wide scope, own
-- collection; anything else is a no-op. True: the index is missing now, restore it afterwards.
CREATE FUNCTION llmbase.suspend_collection_index(p_collection uuid, p_incoming bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
DECLARE
    c llmbase.collections;
    rows_now double precision;
BEGIN
    IF NOT llmbase.tenant_wide() THEN
        RETURN false;
    END IF;
    SELECT * INTO c FROM llmbase.collections
     WHERE id = p_collection AND tenant_id = llmbase.current_tenant_id();
    IF NOT FOUND OR c.index_type = 'none' THEN
        RETURN false;
    END IF;
    IF to_regclass('llmbase.' || c.partition_name || '_vec') IS NULL THEN
        RETURN true;  -- already missing (an interrupted load): build it after this one
    END IF;
    SELECT greatest(reltuples, 0) INTO rows_now FROM pg_class WHERE oid = ('llmbase.' || c.partition_name)::regclass;
    IF p_incoming < 10000 OR p_incoming < rows_now THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP INDEX llmbase.%I', c.partition_name || '_vec');
    RETURN true;
END
$$;

-- Rebuild a collection's vector index when it is missing (after a bulk load); returns the
-- index name when it built one.
CREATE FUNCTION llmbase.restore_collection_index(p_collection uuid) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
DECLARE
    c llmbase.collections;
BEGIN
    IF NOT llmbase.tenant_wide() THEN
        RETURN NULL;
    END IF;
    SELECT * INTO c FROM llmbase.collections
     WHERE id = p_collection AND tenant_id = llmbase.current_tenant_id();
    IF NOT FOUND OR c.index_type = 'none' OR to_regclass('llmbase.' || c.partition_name || '_vec') IS NOT NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('max_parallel_maintenance_workers',
                       greatest(1, current_setting('max_worker_processes')::int / 4)::text, true);
    RETURN llmbase.build_collection_index(c.id);
END
$$;
REVOKE ALL ON FUNCTION llmbase.suspend_collection_index(uuid, bigint), llmbase.restore_collection_index(uuid) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Retrieval log: every search, and the chunks it returned (written by the background
-- writer; the application role reads it under RLS).
CREATE TABLE llmbase.retrievals (
    tenant_id       uuid NOT NULL REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    user_id         uuid,
    collection_id   uuid,
    mode            text NOT NULL CHECK (mode IN ('vector', 'text', 'hybrid')),
    method          text CHECK (method IN ('index', 'exact')),
    query           text,
    filter          jsonb,
    k               integer,
    ef_search       integer,
    threshold       double precision,
    conversation_id uuid,
    message_id      uuid,
    request_id      uuid,
    run_id          uuid,
    result_count    integer NOT NULL DEFAULT 0,
    latency_ms      double precision,
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE llmbase.retrievals IS
    'Every search: query, filter, mode, k, and the conversation/message/request it served.';
CREATE INDEX retrievals_recent ON llmbase.retrievals (tenant_id, created_at DESC);
CREATE INDEX retrievals_message ON llmbase.retrievals (tenant_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX retrievals_conversation ON llmbase.retrievals (tenant_id, conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX retrievals_request ON llmbase.retrievals (tenant_id, request_id) WHERE request_id IS NOT NULL;

CREATE TABLE llmbase.retrieval_results (
    tenant_id    uuid NOT NULL,
    retrieval_id uuid NOT NULL,
    rank         integer NOT NULL CHECK (rank >= 1),
    chunk_id     uuid NOT NULL,
    document_id  uuid NOT NULL,
    score        double precision,
    distance     double precision,
    PRIMARY KEY (tenant_id, retrieval_id, rank),
    FOREIGN KEY (tenant_id, retrieval_id) REFERENCES llmbase.retrievals (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.retrieval_results IS
    'The chunks a search returned, with rank and score (no foreign key to chunks: the log outlives deletions).';
CREATE INDEX retrieval_results_document ON llmbase.retrieval_results (tenant_id, document_id);

-- An answer's sources (seed 003's bot shows them): the chunks retrieved for a message.
CREATE VIEW llmbase.message_sources WITH (security_invoker = true) AS
SELECT r.tenant_id, r.message_id, r.conversation_id, r.id AS retrieval_id, x.rank, x.score, x.chunk_id,
       x.document_id, d.title, d.source, d.external_id
  FROM llmbase.retrievals r
  JOIN llmbase.retrieval_results x ON x.tenant_id = r.tenant_id AND x.retrieval_id = r.id
  LEFT JOIN llmbase.documents d ON d.tenant_id = x.tenant_id AND d.id = x.document_id
 WHERE r.message_id IS NOT NULL;

-- Feedback per document: how the answers that used a document were rated.
CREATE VIEW llmbase.document_feedback WITH (security_invoker = true) AS
SELECT x.tenant_id, x.document_id, count(DISTINCT r.message_id) AS answers,
       count(f.id) FILTER (WHERE f.rating > 0) AS thumbs_up,
       count(f.id) FILTER (WHERE f.rating < 0) AS thumbs_down
  FROM llmbase.retrieval_results x
  JOIN llmbase.retrievals r ON r.tenant_id = x.tenant_id AND r.id = x.retrieval_id AND r.message_id IS NOT NULL
  LEFT JOIN llmbase.feedback f ON f.tenant_id = r.tenant_id AND f.message_id = r.message_id
 GROUP BY x.tenant_id, x.document_id;

-- ---------------------------------------------------------------------------------------
-- RLS. Collections: readable by the tenant's scopes; written only through the functions
-- above. Documents and chunks: a user reads their own, the tenant's shared ones (user_id
-- NULL) and public ones, and writes their own; tenant-wide scope reads and writes all of
-- the tenant; anonymous clients read public documents and their chunks. Supabase's `anon`
-- role reads public rows only, whatever claims its JWT carries (as it has no grant on any
-- other table).
ALTER TABLE llmbase.collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.collections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.collections FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT current_user <> 'anon'));
CREATE POLICY public_read ON llmbase.collections FOR SELECT
    USING (EXISTS (SELECT FROM llmbase.documents d WHERE d.collection_id = collections.id AND d.is_public));
CREATE POLICY admin_all ON llmbase.collections TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.documents FOR SELECT
    USING (is_public OR ((SELECT current_user <> 'anon') AND tenant_id = (SELECT llmbase.current_tenant_id()) AND (user_id IS NULL OR user_id = (SELECT llmbase.current_user_id()) OR (SELECT llmbase.tenant_wide()))));
CREATE POLICY tenant_insert ON llmbase.documents FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_update ON llmbase.documents FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_delete ON llmbase.documents FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.documents TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.chunks FOR SELECT
    USING (is_public OR ((SELECT current_user <> 'anon') AND tenant_id = (SELECT llmbase.current_tenant_id()) AND (user_id IS NULL OR user_id = (SELECT llmbase.current_user_id()) OR (SELECT llmbase.tenant_wide()))));
CREATE POLICY tenant_insert ON llmbase.chunks FOR INSERT
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_update ON llmbase.chunks FOR UPDATE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY tenant_delete ON llmbase.chunks FOR DELETE
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.chunks TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- Chunks keep their document's owner and public flag: a chunk can only be added to a
-- document with the same tenant, collection, owner and flag (checked once per statement,
-- so a user can never hang a chunk under someone else's document).
CREATE FUNCTION llmbase.chunks_check_documents() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF EXISTS (
        SELECT FROM new_rows n
         WHERE NOT EXISTS (
            SELECT FROM llmbase.documents d
             WHERE d.tenant_id = n.tenant_id AND d.id = n.document_id AND d.collection_id = n.collection_id
               AND d.user_id IS NOT DISTINCT FROM n.user_id AND d.is_public = n.is_public)
    ) THEN
        RAISE EXCEPTION 'chunk does not match its document (tenant, collection, owner, is_public)'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chunks_check_insert AFTER INSERT ON llmbase.chunks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.chunks_check_documents();
CREATE TRIGGER chunks_check_update AFTER UPDATE ON llmbase.chunks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.chunks_check_documents();

-- A document's owner or public flag change moves its chunks along.
CREATE FUNCTION llmbase.documents_sync_chunks() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    UPDATE llmbase.chunks SET user_id = NEW.user_id, is_public = NEW.is_public
     WHERE tenant_id = NEW.tenant_id AND collection_id = NEW.collection_id AND document_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER documents_sync_chunks AFTER UPDATE OF user_id, is_public ON llmbase.documents
    FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.is_public IS DISTINCT FROM NEW.is_public)
    EXECUTE FUNCTION llmbase.documents_sync_chunks();

ALTER TABLE llmbase.retrievals ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.retrievals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.retrievals FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (user_id = (SELECT llmbase.current_user_id()) OR (SELECT llmbase.tenant_wide())));
CREATE POLICY admin_all ON llmbase.retrievals TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.retrieval_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.retrieval_results FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.retrieval_results FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND ((SELECT llmbase.tenant_wide()) OR EXISTS (
        SELECT FROM llmbase.retrievals r WHERE r.tenant_id = retrieval_results.tenant_id
           AND r.id = retrieval_results.retrieval_id AND r.user_id = (SELECT llmbase.current_user_id()))));
CREATE POLICY admin_all ON llmbase.retrieval_results TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- ---------------------------------------------------------------------------------------
-- The seeds' SQL functions, for SQL and Supabase-RPC clients. They run as the caller
-- (RLS applies). `filter` is a JSON containment filter (metadata @> filter), as in the
-- seeds; the SDK's filter language (docs/documents.md) is richer. `collection` names a
-- collection of the current tenant; NULL picks the tenant's only collection.
CREATE FUNCTION llmbase.resolve_collection(p_collection text) RETURNS llmbase.collections
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    c llmbase.collections;
    n integer;
BEGIN
    IF p_collection IS NULL THEN
        SELECT count(*) INTO n FROM llmbase.collections;
        IF n <> 1 THEN
            RAISE EXCEPTION 'name the collection (% visible)', n USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT * INTO c FROM llmbase.collections;
    ELSE
        SELECT * INTO c FROM llmbase.collections
         WHERE name = p_collection OR id = llmbase.safe_uuid(p_collection)
         ORDER BY tenant_id = llmbase.current_tenant_id() DESC LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'collection % not found', p_collection USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    RETURN c;
END
$$;

-- The nearest chunks of a collection with their owner: the body of match_documents and
-- match_embeddings. A dynamic statement, so the collection id is a literal (its partition
-- is pruned at plan time) and the ORDER BY is the partition index's typed expression.
CREATE FUNCTION llmbase.match_chunks(
    query_embedding vector,
    match_threshold double precision DEFAULT NULL,
    match_count integer DEFAULT 10,
    filter jsonb DEFAULT '{}',
    collection text DEFAULT NULL
) RETURNS TABLE (id uuid, document_id uuid, content text, metadata jsonb, similarity double precision, user_id uuid)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    c llmbase.collections := llmbase.resolve_collection(collection);
    col text := CASE c.storage WHEN 'vector' THEN 'embedding' ELSE 'embedding_half' END;
    op text := CASE c.distance WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' ELSE '<#>' END;
    sim text := CASE c.distance WHEN 'cosine' THEN '1 - d' WHEN 'l2' THEN '-d' ELSE '-d' END;
    cond text := CASE WHEN coalesce(filter, '{}') = '{}' THEN '' ELSE ' AND ch.metadata @> $2' END;
BEGIN
    IF query_embedding IS NULL OR array_length(query_embedding::real[], 1) <> c.dimension THEN
        RAISE EXCEPTION 'query_embedding must have % dimensions', c.dimension USING ERRCODE = 'data_exception';
    END IF;
    IF match_count IS NULL OR match_count < 1 OR match_count > 1000 THEN
        RAISE EXCEPTION 'match_count must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF filter IS NOT NULL AND jsonb_typeof(filter) <> 'object' THEN
        RAISE EXCEPTION 'filter must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
    PERFORM set_config('ivfflat.iterative_scan', 'relaxed_order', true);
    RETURN QUERY EXECUTE format(
        'WITH nn AS MATERIALIZED (
             SELECT ch.id, ch.document_id, ch.content, ch.metadata, ch.user_id,
                    (ch.%1$I::%7$I.%2$s(%3$s)) OPERATOR(%7$I.%4$s) $1::%7$I.%2$s(%3$s) AS d
               FROM llmbase.chunks ch
              WHERE ch.collection_id = %5$L%8$s
              ORDER BY d LIMIT $3)
         SELECT nn.id, nn.document_id, nn.content, nn.metadata, (%6$s)::float8 AS similarity, nn.user_id
           FROM nn WHERE (%6$s) > $4 ORDER BY nn.d + 0',
        col, c.storage, c.dimension, op, c.id, sim, llmbase.vector_schema(), cond)
    USING query_embedding, coalesce(filter, '{}'), match_count, coalesce(match_threshold, '-Infinity'::float8);
END
$$;
COMMENT ON FUNCTION llmbase.match_chunks(vector, double precision, integer, jsonb, text) IS
    'Nearest chunks of a collection above a similarity threshold, with a containment filter and each chunk''s owner.';

CREATE FUNCTION llmbase.match_documents(
    query_embedding vector,
    match_threshold double precision DEFAULT 0,
    match_count integer DEFAULT 10,
    filter jsonb DEFAULT '{}',
    collection text DEFAULT NULL
) RETURNS TABLE (id uuid, document_id uuid, content text, metadata jsonb, similarity double precision)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
    SELECT m.id, m.document_id, m.content, m.metadata, m.similarity
      FROM llmbase.match_chunks(query_embedding, match_threshold, match_count, filter, collection) m
     ORDER BY m.similarity DESC
$$;
COMMENT ON FUNCTION llmbase.match_documents(vector, double precision, integer, jsonb, text) IS
    'Seed 003''s match_documents: nearest chunks above a similarity threshold, with a containment filter.';

-- Seed 001's name and shape (content, metadata, similarity, owner).
CREATE FUNCTION llmbase.match_embeddings(
    query_embedding vector,
    match_threshold double precision DEFAULT 0.78,
    match_count integer DEFAULT 10,
    filter jsonb DEFAULT '{}',
    collection text DEFAULT NULL
) RETURNS TABLE (id uuid, content text, metadata jsonb, similarity double precision, user_id uuid)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
    SELECT m.id, m.content, m.metadata, m.similarity, m.user_id
      FROM llmbase.match_chunks(query_embedding, match_threshold, match_count, filter, collection) m
     ORDER BY m.similarity DESC
$$;

-- Delete the documents (and their chunks) whose metadata contains `filter`; returns the count.
CREATE FUNCTION llmbase.delete_by_metadata(filter jsonb, collection text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    c llmbase.collections := llmbase.resolve_collection(collection);
    n bigint;
BEGIN
    IF filter IS NULL OR jsonb_typeof(filter) <> 'object' OR filter = '{}' THEN
        RAISE EXCEPTION 'filter must be a non-empty JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM llmbase.documents d WHERE d.collection_id = c.id AND d.metadata @> filter;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Delete every document of the current user in a collection (all collections when NULL).
CREATE FUNCTION llmbase.clear_all_embeddings(collection text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    me uuid := llmbase.current_user_id();
    c llmbase.collections;
    n bigint;
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION 'clear_all_embeddings needs a user context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF collection IS NULL THEN
        DELETE FROM llmbase.documents d WHERE d.user_id = me;
    ELSE
        c := llmbase.resolve_collection(collection);
        DELETE FROM llmbase.documents d WHERE d.user_id = me AND d.collection_id = c.id;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------------------------
GRANT SELECT ON llmbase.collections, llmbase.retrievals, llmbase.retrieval_results,
    llmbase.message_sources, llmbase.document_feedback TO llmbase_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.documents, llmbase.chunks TO llmbase_app;
GRANT EXECUTE ON FUNCTION llmbase.create_collection(text, integer, text, text, text, integer, integer, integer, regconfig, text, jsonb),
    llmbase.drop_collection(uuid), llmbase.suspend_collection_index(uuid, bigint),
    llmbase.restore_collection_index(uuid) TO llmbase_app;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        GRANT SELECT ON llmbase.collections, llmbase.documents, llmbase.chunks TO anon;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON llmbase.collections, llmbase.retrievals, llmbase.retrieval_results,
            llmbase.message_sources, llmbase.document_feedback TO authenticated;
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.documents, llmbase.chunks TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.collections, llmbase.documents, llmbase.chunks,
            llmbase.retrievals, llmbase.retrieval_results TO service_role;
        GRANT SELECT ON llmbase.message_sources, llmbase.document_feedback TO service_role;
        GRANT EXECUTE ON FUNCTION llmbase.create_collection(text, integer, text, text, text, integer, integer, integer, regconfig, text, jsonb),
            llmbase.drop_collection(uuid) TO service_role;
    END IF;
END
$$;

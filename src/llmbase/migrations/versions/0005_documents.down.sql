-- Reverse of 0005. Dropping the chunks parent drops every collection's partition.
DROP FUNCTION llmbase.clear_all_embeddings(text);
DROP FUNCTION llmbase.delete_by_metadata(jsonb, text);
DROP FUNCTION llmbase.match_embeddings(vector, double precision, integer, jsonb, text);
DROP FUNCTION llmbase.match_documents(vector, double precision, integer, jsonb, text);
DROP FUNCTION llmbase.match_chunks(vector, double precision, integer, jsonb, text);
DROP VIEW llmbase.document_feedback;
DROP VIEW llmbase.message_sources;
DROP TABLE llmbase.retrieval_results;
DROP TABLE llmbase.retrievals;
DROP TABLE llmbase.chunks;
DROP POLICY public_read ON llmbase.collections;
DROP FUNCTION llmbase.chunks_check_documents();
DROP TABLE llmbase.documents;
DROP FUNCTION llmbase.documents_sync_chunks();
DROP FUNCTION llmbase.restore_collection_index(uuid);
DROP FUNCTION llmbase.suspend_collection_index(uuid, bigint);
DROP FUNCTION llmbase.drop_collection(uuid);
DROP FUNCTION llmbase.create_collection(text, integer, text, text, text, integer, integer, integer, regconfig, text, jsonb);
DROP FUNCTION llmbase.build_collection_index(uuid);
DROP FUNCTION llmbase.resolve_collection(text);
DROP TABLE llmbase.collections;
DROP FUNCTION llmbase.vector_opclass(text, text);
DROP FUNCTION llmbase.vector_schema();
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) NOT LEAKPROOF;
        ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) NOT LEAKPROOF;
    END IF;
END
$$;

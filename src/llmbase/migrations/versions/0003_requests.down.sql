-- Reverse of 0003. Dropping the parent drops every partition (and the logged calls).
DROP TABLE llmbase.ingest_dead_letters;
DROP TABLE llmbase.model_prices;
DROP TABLE llmbase.run_tool_calls;
DROP TABLE llmbase.run_iterations;
DROP TABLE llmbase.runs;
DROP INDEX llmbase.conversations_completed;
DROP FUNCTION llmbase.run_visible(uuid, uuid);
DROP AGGREGATE llmbase.hist_sum(bigint[]);
DROP FUNCTION llmbase.hist_quantile(bigint[], double precision);
DROP FUNCTION llmbase.hist_add(bigint[], bigint[]);
DROP TABLE llmbase.request_rollups_tenant;
DROP TABLE llmbase.request_rollups;
DROP TABLE llmbase.requests;
DROP FUNCTION llmbase.ensure_request_partitions(date, date);

-- Reverse of 0004.
DROP TRIGGER rollup_delete ON llmbase.run_iterations;
DROP TRIGGER rollup_update ON llmbase.run_iterations;
DROP TRIGGER rollup_insert ON llmbase.run_iterations;
DROP FUNCTION llmbase.run_iterations_rollup();
DROP TABLE llmbase.run_iteration_rollups;
DROP FUNCTION llmbase.hist_of(double precision[], bigint);
DROP FUNCTION llmbase.hist_bucket(double precision);

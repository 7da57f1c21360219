-- Per-iteration-number rollups of agent runs (seed 004's iteration statistics and trends).
--
-- llmbase.run_iteration_rollups holds, per tenant, grain (hour, day), UTC bucket of
-- started_at and iteration number: the count, sums, min/max and a mergeable histogram of
-- API time (same buckets as the request latency histograms: llmbase.histogram), tool and
-- total time. Statement-level triggers on llmbase.run_iterations keep it exact for every
-- write path (the writer's MERGE, COPY, plain SQL, cascaded deletes): inserted rows add,
-- deleted rows subtract, an update subtracts the old row and adds the new one. min/max are
-- the extremes of the values ever added to a bucket (an update or delete does not shrink
-- them).

-- The bucket of a latency (llmbase.histogram.bucket in SQL: MIN_MS 0.1, GAMMA 1.05/0.95,
-- 200 buckets; NULL or <= MIN_MS is bucket 0).
CREATE FUNCTION llmbase.hist_bucket(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT CASE WHEN ms IS NULL OR ms <= 0.1 THEN 0
                ELSE least(floor(ln(ms / 0.1) / ln(1.05 / 0.95))::integer, 199) END
$$;

-- A histogram (dense counts, trailing zeros trimmed) of the non-NULL values, each counted
-- `weight` times (-1 to subtract with llmbase.hist_add).
CREATE FUNCTION llmbase.hist_of(ms double precision[], weight bigint DEFAULT 1) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    WITH b AS (
        SELECT llmbase.hist_bucket(v) AS b, count(*) * weight AS c
          FROM unnest(ms) AS v WHERE v IS NOT NULL GROUP BY 1
    )
    SELECT coalesce(array_agg(coalesce(b.c, 0) ORDER BY g.i), '{}')
      FROM generate_series(0, (SELECT max(b) FROM b)) AS g(i) LEFT JOIN b ON b.b = g.i
$$;

CREATE TABLE llmbase.run_iteration_rollups (
    tenant_id     uuid NOT NULL,
    grain         text NOT NULL CHECK (grain IN ('hour', 'day')),
    bucket_start  timestamptz NOT NULL,
    iteration     integer NOT NULL,
    iterations    bigint NOT NULL DEFAULT 0,
    api_ms_sum    double precision NOT NULL DEFAULT 0,
    api_ms_min    double precision,
    api_ms_max    double precision,
    api_hist      bigint[] NOT NULL DEFAULT '{}',
    tool_ms_sum   double precision NOT NULL DEFAULT 0,
    total_count   bigint NOT NULL DEFAULT 0,
    total_ms_sum  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, bucket_start, iteration)
);
COMMENT ON TABLE llmbase.run_iteration_rollups IS
    'Agent-run iterations per tenant, hour/day and iteration number: count, API time (sum, min, max, histogram), tool and total time. Kept by triggers on run_iterations.';

CREATE FUNCTION llmbase.run_iterations_rollup() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    delta text;
BEGIN
    -- The changed rows with a weight: +1 for new rows, -1 for old ones.
    delta := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS w FROM new_rows n'
        WHEN 'DELETE' THEN 'SELECT o.*, -1 AS w FROM old_rows o'
        ELSE 'SELECT n.*, 1 AS w FROM new_rows n UNION ALL SELECT o.*, -1 AS w FROM old_rows o'
    END;
    EXECUTE format($q$
        INSERT INTO llmbase.run_iteration_rollups AS t (tenant_id, grain, bucket_start, iteration,
            iterations, api_ms_sum, api_ms_min, api_ms_max, api_hist, tool_ms_sum, total_count,
            total_ms_sum)
        SELECT d.tenant_id, g.grain, date_trunc(g.grain, d.started_at, 'UTC'), d.iteration,
               sum(d.w), sum(d.w * d.api_ms),
               min(d.api_ms) FILTER (WHERE d.w > 0), max(d.api_ms) FILTER (WHERE d.w > 0),
               llmbase.hist_add(llmbase.hist_of(array_agg(d.api_ms) FILTER (WHERE d.w > 0)),
                                llmbase.hist_of(array_agg(d.api_ms) FILTER (WHERE d.w < 0), -1)),
               sum(d.w * d.tool_ms),
               coalesce(sum(d.w) FILTER (WHERE d.total_ms IS NOT NULL), 0),
               coalesce(sum(d.w * d.total_ms), 0)
          FROM (%s) AS d CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
         GROUP BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, grain, bucket_start, iteration) DO UPDATE SET
            iterations = t.iterations + EXCLUDED.iterations,
            api_ms_sum = t.api_ms_sum + EXCLUDED.api_ms_sum,
            api_ms_min = least(t.api_ms_min, EXCLUDED.api_ms_min),
            api_ms_max = greatest(t.api_ms_max, EXCLUDED.api_ms_max),
            api_hist = llmbase.hist_add(t.api_hist, EXCLUDED.api_hist),
            tool_ms_sum = t.tool_ms_sum + EXCLUDED.tool_ms_sum,
            total_count = t.total_count + EXCLUDED.total_count,
            total_ms_sum = t.total_ms_sum + EXCLUDED.total_ms_sum
    $q$, delta);
    IF TG_OP = 'DELETE' THEN
        DELETE FROM llmbase.run_iteration_rollups r
         USING (SELECT DISTINCT tenant_id FROM old_rows) AS o
         WHERE r.tenant_id = o.tenant_id AND r.iterations <= 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollup_insert AFTER INSERT ON llmbase.run_iterations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.run_iterations_rollup();
CREATE TRIGGER rollup_update AFTER UPDATE ON llmbase.run_iterations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.run_iterations_rollup();
CREATE TRIGGER rollup_delete AFTER DELETE ON llmbase.run_iterations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.run_iterations_rollup();

-- Backfill from the iterations already logged.
INSERT INTO llmbase.run_iteration_rollups (tenant_id, grain, bucket_start, iteration, iterations,
    api_ms_sum, api_ms_min, api_ms_max, api_hist, tool_ms_sum, total_count, total_ms_sum)
SELECT i.tenant_id, g.grain, date_trunc(g.grain, i.started_at, 'UTC'), i.iteration, count(*),
       sum(i.api_ms), min(i.api_ms), max(i.api_ms), llmbase.hist_of(array_agg(i.api_ms)),
       sum(i.tool_ms), count(i.total_ms), coalesce(sum(i.total_ms), 0)
  FROM llmbase.run_iterations AS i CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
 GROUP BY 1, 2, 3, 4;

ALTER TABLE llmbase.run_iteration_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.run_iteration_rollups FORCE ROW LEVEL SECURITY;
-- Tenant-wide reading only, like request_rollups_tenant (a user scope reads raw iterations).
CREATE POLICY tenant_read ON llmbase.run_iteration_rollups FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.run_iteration_rollups TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

GRANT SELECT ON llmbase.run_iteration_rollups TO llmbase_app;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON llmbase.run_iteration_rollups TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.run_iteration_rollups TO service_role;
    END IF;
END
$$;

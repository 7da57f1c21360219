-- llmbase 0003: the request log (time-partitioned), its maintained rollups, agent runs and
-- iterations, per-tenant price overrides, and the ingest dead-letter table.
--
-- The log is append-only with client-generated UUIDv7 ids; replays are idempotent through
-- the primary key (tenant_id, created_at, id). Rows are written by the background writer
-- in operator scope (batched COPY through a staging table), never by the application role.

CREATE TABLE llmbase.requests (
    tenant_id          uuid NOT NULL,
    created_at         timestamptz NOT NULL,
    id                 uuid NOT NULL,
    request_type       text NOT NULL CHECK (request_type IN
                       ('chat', 'completion', 'embedding', 'transcription', 'speech', 'image',
                        'moderation', 'rerank', 'other')),
    provider           text CHECK (length(provider) <= 100),
    model              text CHECK (length(model) <= 200),
    user_id            uuid,
    conversation_id    uuid,
    message_id         uuid,
    run_id             uuid,
    iteration          integer CHECK (iteration >= 0),
    status             text NOT NULL DEFAULT 'success' CHECK (status IN
                       ('success', 'error', 'timeout', 'rate_limited', 'cancelled')),
    error_kind         text CHECK (length(error_kind) <= 200),
    error_message      text CHECK (length(error_message) <= 10000),
    http_status        smallint,
    tokens_prompt      integer CHECK (tokens_prompt >= 0),
    tokens_completion  integer CHECK (tokens_completion >= 0),
    tokens_total       integer CHECK (tokens_total >= 0),
    tokens_cached      integer CHECK (tokens_cached >= 0),
    tokens_reasoning   integer CHECK (tokens_reasoning >= 0),
    cost_usd           numeric(20, 10) CHECK (cost_usd >= 0),
    cost_source        text,
    cost_unknown       boolean NOT NULL DEFAULT false,
    latency_ms         double precision CHECK (latency_ms >= 0),
    ttft_ms            double precision CHECK (ttft_ms >= 0),
    stream             boolean NOT NULL DEFAULT false,
    cache_hit          boolean NOT NULL DEFAULT false,
    cost_saved_usd     numeric(20, 10),
    audio_duration_s   real CHECK (audio_duration_s >= 0),
    audio_format       text CHECK (length(audio_format) <= 50),
    audio_bytes        bigint CHECK (audio_bytes >= 0),
    request_body       jsonb,
    response_body      jsonb,
    bodies_truncated   boolean NOT NULL DEFAULT false,
    tags               text[] NOT NULL DEFAULT '{}',
    metadata           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    PRIMARY KEY (tenant_id, created_at, id)
) PARTITION BY RANGE (created_at);
COMMENT ON TABLE llmbase.requests IS
    'One row per model call (stable interface). Daily partitions; retention detaches whole partitions.';
COMMENT ON COLUMN llmbase.requests.cost_unknown IS 'true when no price was known: cost_usd is NULL, never 0.';
COMMENT ON COLUMN llmbase.requests.bodies_truncated IS 'true when a body was cut to the size cap (see the marker inside it).';

-- The explorer's and the seeds' queries (aggregates come from request_rollups):
CREATE INDEX requests_user_time ON llmbase.requests (tenant_id, user_id, created_at DESC);   -- a user's calls
CREATE INDEX requests_conversation ON llmbase.requests (tenant_id, conversation_id)
    WHERE conversation_id IS NOT NULL;                                                    -- calls of a conversation
CREATE INDEX requests_run ON llmbase.requests (tenant_id, run_id, iteration)
    WHERE run_id IS NOT NULL;                                                             -- calls of an agent run
CREATE INDEX requests_errors ON llmbase.requests (tenant_id, created_at DESC)
    WHERE status <> 'success';                                                            -- recent errors
CREATE INDEX requests_slowest ON llmbase.requests (tenant_id, latency_ms DESC NULLS LAST); -- slowest requests

-- Daily partitions named requests_pYYYYMMDD. Partitions get RLS enabled and forced with no
-- policy of their own: reads go through the parent (whose policies apply); direct access
-- to a partition returns nothing to anyone but a superuser.
CREATE FUNCTION llmbase.ensure_request_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    d date := p_from;
    created integer := 0;
    part text;
BEGIN
    IF p_to < p_from OR p_to - p_from > 3660 THEN
        RAISE EXCEPTION 'partition range % .. % is not sensible', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WHILE d <= p_to LOOP
        part := 'requests_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass('llmbase.' || part) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE llmbase.%I PARTITION OF llmbase.requests FOR VALUES FROM (%L) TO (%L)',
                    part, d::timestamptz AT TIME ZONE 'UTC', (d + 1)::timestamptz AT TIME ZONE 'UTC');
                EXECUTE format('ALTER TABLE llmbase.%I ENABLE ROW LEVEL SECURITY', part);
                EXECUTE format('ALTER TABLE llmbase.%I FORCE ROW LEVEL SECURITY', part);
                created := created + 1;
            EXCEPTION WHEN duplicate_table OR unique_violation THEN
                NULL;  -- a concurrent writer made it (the race can surface as either error)
            END;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END
$$;
REVOKE ALL ON FUNCTION llmbase.ensure_request_partitions(date, date) FROM PUBLIC;
COMMENT ON FUNCTION llmbase.ensure_request_partitions(date, date) IS
    'Create the daily partitions (UTC days) of llmbase.requests covering p_from..p_to.';

SELECT llmbase.ensure_request_partitions((now() AT TIME ZONE 'UTC')::date - 1,
                                         (now() AT TIME ZONE 'UTC')::date + 7);

-- ---------------------------------------------------------------------------------------
-- Rollups per tenant, user, model, provider and request type, per hour and per day,
-- maintained by the writer in the same transaction as each batch (only rows actually
-- inserted count, so replays never double count). Latency: count, sum, max and a
-- mergeable log-bucket histogram (llmbase/histogram.py: bucket i covers
-- [0.1 ms * g^i, 0.1 ms * g^(i+1)), g = 1.05/0.95; quantiles within 5%).
CREATE TABLE llmbase.request_rollups (
    tenant_id          uuid NOT NULL,
    grain              text NOT NULL CHECK (grain IN ('hour', 'day')),
    bucket_start       timestamptz NOT NULL,
    user_id            uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    model              text NOT NULL DEFAULT '',
    provider           text NOT NULL DEFAULT '',
    request_type       text NOT NULL,
    requests           bigint NOT NULL DEFAULT 0,
    errors             bigint NOT NULL DEFAULT 0,
    tokens_prompt      bigint NOT NULL DEFAULT 0,
    tokens_completion  bigint NOT NULL DEFAULT 0,
    tokens_total       bigint NOT NULL DEFAULT 0,
    tokens_cached      bigint NOT NULL DEFAULT 0,
    tokens_reasoning   bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(24, 10) NOT NULL DEFAULT 0,
    cost_unknown       bigint NOT NULL DEFAULT 0,
    cache_hits         bigint NOT NULL DEFAULT 0,
    cost_saved_usd     numeric(24, 10) NOT NULL DEFAULT 0,
    latency_count      bigint NOT NULL DEFAULT 0,
    latency_sum_ms     double precision NOT NULL DEFAULT 0,
    latency_max_ms     double precision NOT NULL DEFAULT 0,
    latency_hist       bigint[] NOT NULL DEFAULT '{}',
    ttft_count         bigint NOT NULL DEFAULT 0,
    ttft_sum_ms        double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, bucket_start, user_id, model, provider, request_type)
);
COMMENT ON TABLE llmbase.request_rollups IS
    'Maintained usage aggregates per hour and day (replaces the seeds'' usage_metrics and daily views).';
COMMENT ON COLUMN llmbase.request_rollups.user_id IS 'The all-zero uuid stands for calls without a user.';

-- The same rollups without the user: tenant-wide and operator reports that do not filter
-- by user read these (far fewer rows over 30-90 days than the per-user level). The writer
-- upserts both levels from the same deltas in the same transaction; rebuild_rollups
-- rebuilds both. A user scope sees none of it (its reports read request_rollups).
CREATE TABLE llmbase.request_rollups_tenant (
    tenant_id          uuid NOT NULL,
    grain              text NOT NULL CHECK (grain IN ('hour', 'day')),
    bucket_start       timestamptz NOT NULL,
    model              text NOT NULL DEFAULT '',
    provider           text NOT NULL DEFAULT '',
    request_type       text NOT NULL,
    requests           bigint NOT NULL DEFAULT 0,
    errors             bigint NOT NULL DEFAULT 0,
    tokens_prompt      bigint NOT NULL DEFAULT 0,
    tokens_completion  bigint NOT NULL DEFAULT 0,
    tokens_total       bigint NOT NULL DEFAULT 0,
    tokens_cached      bigint NOT NULL DEFAULT 0,
    tokens_reasoning   bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(24, 10) NOT NULL DEFAULT 0,
    cost_unknown       bigint NOT NULL DEFAULT 0,
    cache_hits         bigint NOT NULL DEFAULT 0,
    cost_saved_usd     numeric(24, 10) NOT NULL DEFAULT 0,
    latency_count      bigint NOT NULL DEFAULT 0,
    latency_sum_ms     double precision NOT NULL DEFAULT 0,
    latency_max_ms     double precision NOT NULL DEFAULT 0,
    latency_hist       bigint[] NOT NULL DEFAULT '{}',
    ttft_count         bigint NOT NULL DEFAULT 0,
    ttft_sum_ms        double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, bucket_start, model, provider, request_type)
);
COMMENT ON TABLE llmbase.request_rollups_tenant IS
    'request_rollups summed over users: what tenant-wide reports without a user filter read.';

-- Element-wise sum of two histograms (different lengths allowed).
CREATE FUNCTION llmbase.hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
    SELECT coalesce(array_agg(coalesce(a[i], 0) + coalesce(b[i], 0) ORDER BY i), '{}')
      FROM generate_series(1, greatest(coalesce(cardinality(a), 0), coalesce(cardinality(b), 0))) AS i
$$;
CREATE AGGREGATE llmbase.hist_sum(bigint[]) (SFUNC = llmbase.hist_add, STYPE = bigint[], INITCOND = '{}');

-- Estimated q-quantile of a histogram (same rule as llmbase.histogram.quantile).
CREATE FUNCTION llmbase.hist_quantile(hist bigint[], q double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
DECLARE
    g constant double precision := 1.05 / 0.95;
    n bigint := 0;
    r bigint;
    seen bigint := 0;
    lo double precision;
BEGIN
    IF q < 0 OR q > 1 THEN
        RAISE EXCEPTION 'q must be between 0 and 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1 .. coalesce(cardinality(hist), 0) LOOP
        n := n + hist[i];
    END LOOP;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    r := floor(q * (n - 1));
    FOR i IN 1 .. cardinality(hist) LOOP
        seen := seen + hist[i];
        IF seen > r THEN
            lo := 0.1 * g ^ (i - 1);
            RETURN 2 * lo * (lo * g) / (lo + lo * g);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------------------
-- Agent runs (seed 004's performance_metrics, per iteration) and their tool calls.
CREATE TABLE llmbase.runs (
    tenant_id        uuid NOT NULL REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id               uuid NOT NULL,
    user_id          uuid,
    conversation_id  uuid,
    name             text CHECK (length(name) <= 200),
    status           text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'error', 'cancelled')),
    error            text CHECK (length(error) <= 10000),
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    total_ms         double precision CHECK (total_ms >= 0),
    iteration_count  integer NOT NULL DEFAULT 0,
    api_ms           double precision NOT NULL DEFAULT 0,
    tool_ms          double precision NOT NULL DEFAULT 0,
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE llmbase.runs IS 'Agent runs: totals of their iterations; completion rolls up to the conversation.';
CREATE INDEX runs_recent ON llmbase.runs (tenant_id, started_at DESC);
CREATE INDEX runs_conversation ON llmbase.runs (tenant_id, conversation_id) WHERE conversation_id IS NOT NULL;
-- Completion statistics (seed 004) read completed conversations newest first.
CREATE INDEX conversations_completed ON llmbase.conversations (tenant_id, completed_at DESC)
    WHERE completed_at IS NOT NULL;

CREATE TABLE llmbase.run_iterations (
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    iteration    integer NOT NULL CHECK (iteration >= 1),
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    total_ms     double precision CHECK (total_ms >= 0),
    api_ms       double precision NOT NULL DEFAULT 0 CHECK (api_ms >= 0),
    tool_ms      double precision NOT NULL DEFAULT 0 CHECK (tool_ms >= 0),
    api_calls    integer NOT NULL DEFAULT 0,
    tool_calls   integer NOT NULL DEFAULT 0,
    message_id   uuid,
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    PRIMARY KEY (tenant_id, run_id, iteration),
    FOREIGN KEY (tenant_id, run_id) REFERENCES llmbase.runs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.run_iterations IS 'Per-iteration timing: API time, tool time, total (seed 004).';
-- Per-iteration-number statistics (slowdown patterns) scan by iteration number.
CREATE INDEX run_iterations_number ON llmbase.run_iterations (tenant_id, iteration);

CREATE TABLE llmbase.run_tool_calls (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    run_id       uuid NOT NULL,
    iteration    integer,
    name         text NOT NULL CHECK (length(name) <= 200),
    started_at   timestamptz NOT NULL,
    duration_ms  double precision CHECK (duration_ms >= 0),
    status       text NOT NULL DEFAULT 'success' CHECK (status IN ('success', 'error')),
    error        text CHECK (length(error) <= 10000),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES llmbase.runs (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX run_tool_calls_run ON llmbase.run_tool_calls (tenant_id, run_id, iteration);

-- ---------------------------------------------------------------------------------------
-- Per-tenant price overrides (USD per million tokens); they win over genai-prices.
CREATE TABLE llmbase.model_prices (
    tenant_id              uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                           REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    provider               text NOT NULL DEFAULT '',
    model                  text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    input_per_mtok         numeric(20, 10) NOT NULL DEFAULT 0 CHECK (input_per_mtok >= 0),
    output_per_mtok        numeric(20, 10) NOT NULL DEFAULT 0 CHECK (output_per_mtok >= 0),
    cached_input_per_mtok  numeric(20, 10) CHECK (cached_input_per_mtok >= 0),
    per_request            numeric(20, 10) NOT NULL DEFAULT 0 CHECK (per_request >= 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider, model)
);
COMMENT ON TABLE llmbase.model_prices IS 'Tenant price overrides; provider '''' matches any provider.';
CREATE TRIGGER model_prices_touch BEFORE UPDATE ON llmbase.model_prices
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

-- ---------------------------------------------------------------------------------------
-- Records the database refused several times: kept, visible, never blocking other records.
CREATE TABLE llmbase.ingest_dead_letters (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    kind             text NOT NULL,
    payload          text NOT NULL,
    error            text NOT NULL,
    attempts         integer NOT NULL,
    first_failed_at  timestamptz NOT NULL,
    last_failed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE llmbase.ingest_dead_letters IS 'Records the database rejected after retries (payload as JSON text).';

-- ---------------------------------------------------------------------------------------
-- RLS: tenant-wide scope reads everything of the tenant; a user reads their own calls,
-- rollups and runs. Writes come from the writer in operator scope.
ALTER TABLE llmbase.requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.requests FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.requests TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.request_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.request_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.request_rollups FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.request_rollups TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.request_rollups_tenant ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.request_rollups_tenant FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.request_rollups_tenant FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.request_rollups_tenant TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.runs FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR user_id = (SELECT llmbase.current_user_id())));
CREATE POLICY admin_all ON llmbase.runs TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- Iterations and tool calls follow their run's visibility. Tenant-wide scope short-circuits
-- (an InitPlan), so the per-row lookup runs only for user scopes.
CREATE FUNCTION llmbase.run_visible(p_tenant uuid, p_run uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
    SELECT EXISTS (SELECT 1 FROM llmbase.runs r WHERE r.tenant_id = p_tenant AND r.id = p_run)
$$;

ALTER TABLE llmbase.run_iterations ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.run_iterations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.run_iterations FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR llmbase.run_visible(tenant_id, run_id)));
CREATE POLICY admin_all ON llmbase.run_iterations TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.run_tool_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.run_tool_calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.run_tool_calls FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR llmbase.run_visible(tenant_id, run_id)));
CREATE POLICY admin_all ON llmbase.run_tool_calls TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.model_prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.model_prices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.model_prices FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()));
CREATE POLICY tenant_write ON llmbase.model_prices FOR ALL
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.model_prices TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.ingest_dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.ingest_dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.ingest_dead_letters FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.ingest_dead_letters TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

GRANT SELECT ON llmbase.requests, llmbase.request_rollups, llmbase.request_rollups_tenant,
    llmbase.runs, llmbase.run_iterations, llmbase.run_tool_calls, llmbase.ingest_dead_letters
    TO llmbase_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.model_prices TO llmbase_app;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        -- request_rollups_tenant: granted so PostgREST answers with no rows (a JWT is
        -- never tenant-wide) rather than a permission error.
        GRANT SELECT ON llmbase.requests, llmbase.request_rollups, llmbase.request_rollups_tenant,
            llmbase.runs, llmbase.run_iterations, llmbase.run_tool_calls TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.requests, llmbase.request_rollups,
            llmbase.request_rollups_tenant, llmbase.runs, llmbase.run_iterations,
            llmbase.run_tool_calls, llmbase.model_prices, llmbase.ingest_dead_letters TO service_role;
    END IF;
END
$$;

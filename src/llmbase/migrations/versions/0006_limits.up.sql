-- llmbase 0006: rate limits and cost budgets (seed 003: rate_limits +
-- reset_rate_limit_if_expired(), done atomically; seeds 001/002: usage against a budget).
--
-- rate_limits             definitions: a limit of requests or tokens per minute, hour or
--                         day for the tenant, one user, one API key, or every user of the
--                         tenant separately (subject 'tenant' with per_user).
-- rate_limit_counters     one row per (limit, subject key, fixed window): `used`. UNLOGGED:
--                         counters are cheap to lose (a crash restarts the current windows)
--                         and never worth a WAL write per call. Past windows are deleted by
--                         llmbase.limits_maintenance().
-- budgets                 a cost cap in USD per calendar month (UTC) for the tenant, one
--                         user, or every user separately; soft (warn) or hard (refuse).
-- budget_periods          spent and reserved USD per (budget, subject key, month).
-- budget_reservations     an admitted call's estimated cost until it is settled to the
--                         actual cost; released by llmbase.limits_maintenance() after expiry.
--
-- Counters, periods and reservations are written only by the functions below (SECURITY
-- DEFINER, tenant and user taken from the transaction's context, never from arguments);
-- the application role can read them under RLS but not write them directly.
--
-- Subject keys: the user's id for user and per-user rows, otherwise the all-zero uuid.

-- ---------------------------------------------------------------------------------------
CREATE TABLE llmbase.rate_limits (
    tenant_id   uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT llmbase.uuid7(),
    subject     text NOT NULL CHECK (subject IN ('tenant', 'user', 'api_key')),
    user_id     uuid,
    api_key_id  uuid,
    per_user    boolean NOT NULL DEFAULT false,
    metric      text NOT NULL CHECK (metric IN ('requests', 'tokens')),
    period      text NOT NULL CHECK (period IN ('minute', 'hour', 'day')),
    limit_value bigint NOT NULL CHECK (limit_value BETWEEN 1 AND 1000000000000000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, api_key_id) REFERENCES llmbase.api_keys (tenant_id, id) ON DELETE CASCADE,
    CHECK (CASE subject
               WHEN 'tenant' THEN user_id IS NULL AND api_key_id IS NULL
               WHEN 'user' THEN user_id IS NOT NULL AND api_key_id IS NULL AND NOT per_user
               ELSE api_key_id IS NOT NULL AND user_id IS NULL AND NOT per_user
           END)
);
COMMENT ON TABLE llmbase.rate_limits IS
    'Rate limits: requests or tokens per minute/hour/day for a tenant, a user, an API key, or each user of a tenant (per_user).';
-- One definition per subject, metric and window: setting it again changes its value.
CREATE UNIQUE INDEX rate_limits_subject ON llmbase.rate_limits
    (tenant_id, subject,
     (coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid)),
     (coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid)),
     per_user, metric, period);
CREATE INDEX rate_limits_user ON llmbase.rate_limits (tenant_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX rate_limits_api_key ON llmbase.rate_limits (tenant_id, api_key_id) WHERE api_key_id IS NOT NULL;
CREATE TRIGGER rate_limits_touch BEFORE UPDATE ON llmbase.rate_limits
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

CREATE UNLOGGED TABLE llmbase.rate_limit_counters (
    tenant_id    uuid NOT NULL,
    limit_id     uuid NOT NULL,
    subject_key  uuid NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    used         bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (tenant_id, limit_id, subject_key, window_start)
    -- No foreign key to rate_limits: its check would lock the limit's row (FOR KEY SHARE)
    -- in every call that opens a window, a hot row shared by all of a tenant's users. The
    -- counters of a deleted limit are deleted by the trigger rate_limits_drop_counters.
) WITH (fillfactor = 70);
COMMENT ON TABLE llmbase.rate_limit_counters IS
    'Usage of each rate limit per subject and fixed window (unlogged: emptied by a crash; cleaned by llmbase.limits_maintenance()).';
CREATE INDEX rate_limit_counters_end ON llmbase.rate_limit_counters (window_end);

-- A deleted limit (directly, or with its tenant, user or API key) takes its counters along.
-- A consume racing with the delete may leave a row of the limit's current window behind:
-- nothing reads it (counters are reached through their limit) and maintenance deletes it
-- when the window ends.
CREATE FUNCTION llmbase.rate_limits_drop_counters() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
BEGIN
    DELETE FROM llmbase.rate_limit_counters c
     USING gone g
     WHERE c.tenant_id = g.tenant_id AND c.limit_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER rate_limits_drop_counters AFTER DELETE ON llmbase.rate_limits
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION llmbase.rate_limits_drop_counters();

CREATE TABLE llmbase.budgets (
    tenant_id         uuid NOT NULL DEFAULT llmbase.current_tenant_id()
                      REFERENCES llmbase.tenants (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT llmbase.uuid7(),
    user_id           uuid,
    per_user          boolean NOT NULL DEFAULT false,
    cap_usd           numeric(20, 10) NOT NULL CHECK (cap_usd > 0 AND cap_usd <= 1000000000),
    mode              text NOT NULL DEFAULT 'hard' CHECK (mode IN ('soft', 'hard')),
    -- what a call of a model without a known price reserves; NULL: a hard budget refuses it
    unpriced_call_usd numeric(20, 10) CHECK (unpriced_call_usd >= 0 AND unpriced_call_usd <= 1000000000),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES llmbase.users (tenant_id, id) ON DELETE CASCADE,
    CHECK (user_id IS NULL OR NOT per_user)
);
COMMENT ON TABLE llmbase.budgets IS
    'Monthly (UTC calendar month) cost caps in USD for a tenant, a user, or each user of a tenant (per_user); soft warns, hard refuses.';
CREATE UNIQUE INDEX budgets_subject ON llmbase.budgets
    (tenant_id, (coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid)), per_user);
CREATE INDEX budgets_user ON llmbase.budgets (tenant_id, user_id) WHERE user_id IS NOT NULL;
CREATE TRIGGER budgets_touch BEFORE UPDATE ON llmbase.budgets
    FOR EACH ROW EXECUTE FUNCTION llmbase.touch_updated_at();

CREATE TABLE llmbase.budget_periods (
    tenant_id    uuid NOT NULL,
    budget_id    uuid NOT NULL,
    subject_key  uuid NOT NULL,
    period_start date NOT NULL,
    spent_usd    numeric(20, 10) NOT NULL DEFAULT 0 CHECK (spent_usd >= 0),
    reserved_usd numeric(20, 10) NOT NULL DEFAULT 0 CHECK (reserved_usd >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, budget_id, subject_key, period_start),
    FOREIGN KEY (tenant_id, budget_id) REFERENCES llmbase.budgets (tenant_id, id) ON DELETE CASCADE
) WITH (fillfactor = 70);
COMMENT ON TABLE llmbase.budget_periods IS
    'Spent and reserved USD of a budget per subject and month (period_start = first day, UTC).';

CREATE TABLE llmbase.budget_reservations (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    budget_id    uuid NOT NULL,
    subject_key  uuid NOT NULL,
    period_start date NOT NULL,
    amount_usd   numeric(20, 10) NOT NULL CHECK (amount_usd >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    released     boolean NOT NULL DEFAULT false, -- expired: its amount no longer counts as reserved
    PRIMARY KEY (tenant_id, id, budget_id),
    FOREIGN KEY (tenant_id, budget_id, subject_key, period_start)
        REFERENCES llmbase.budget_periods (tenant_id, budget_id, subject_key, period_start) ON DELETE CASCADE
);
COMMENT ON TABLE llmbase.budget_reservations IS
    'Estimated cost of admitted calls until settled; released after expires_at by llmbase.limits_maintenance().';
CREATE INDEX budget_reservations_expiry ON llmbase.budget_reservations (expires_at);
CREATE INDEX budget_reservations_period ON llmbase.budget_reservations
    (tenant_id, budget_id, subject_key, period_start);

-- ---------------------------------------------------------------------------------------
-- Admit-and-count (or, with p_dry_run, only tell whether it would admit) a call of
-- p_requests requests and p_tokens tokens against every limit that applies to the current
-- tenant, the current user (or p_user in tenant-wide scope) and p_api_key. All or none:
-- when one limit refuses, what was counted on the others is taken back before returning.
-- Counters are locked in a fixed order (limit id), so concurrent calls never deadlock.
-- One row per applicable limit; `used` is the window's use before this call. A limit whose
-- amount in this call is 0 refuses only when its window is used up.
--
-- This is the hot path of every rate-limited call: it is written for few statements and
-- few PL/pgSQL expressions (each costs an executor setup per transaction), one lookup of
-- the definitions and one upsert per limit.
CREATE FUNCTION llmbase.consume_limits(
    p_requests bigint, p_tokens bigint, p_api_key uuid DEFAULT NULL, p_user uuid DEFAULT NULL,
    p_dry_run boolean DEFAULT false
) RETURNS TABLE (
    limit_id uuid, subject text, per_user boolean, metric text, period text, limit_value bigint,
    subject_key uuid, window_start timestamptz, reset_at timestamptz, used bigint, allowed boolean
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
#variable_conflict use_column
DECLARE
    t uuid := llmbase.current_tenant_id();
    u uuid := llmbase.current_user_id();
    r record;
    n bigint;
    refused boolean := false;
    counted uuid[];
    keys uuid[];
    starts timestamptz[];
    amounts bigint[];
BEGIN
    IF t IS NULL OR p_requests IS NULL OR p_requests < 0 OR p_tokens IS NULL OR p_tokens < 0
       OR (p_user IS NOT NULL AND u IS DISTINCT FROM p_user) THEN
        IF t IS NULL THEN
            RAISE EXCEPTION 'no tenant in this transaction' USING ERRCODE = 'insufficient_privilege';
        ELSIF p_requests IS NULL OR p_requests < 0 OR p_tokens IS NULL OR p_tokens < 0 THEN
            RAISE EXCEPTION 'amounts must be >= 0' USING ERRCODE = 'invalid_parameter_value';
        ELSIF NOT llmbase.tenant_wide() THEN
            RAISE EXCEPTION 'a user scope may only consume for itself' USING ERRCODE = 'insufficient_privilege';
        END IF;
        u := p_user;
    END IF;
    FOR r IN
        SELECT l.id, l.subject, l.per_user, l.metric, l.period, l.limit_value,
               CASE WHEN l.subject = 'user' OR l.per_user
                    THEN coalesce(u, '00000000-0000-0000-0000-000000000000'::uuid)
                    ELSE '00000000-0000-0000-0000-000000000000'::uuid END AS k,
               date_trunc(l.period, now(), 'UTC') AS ws,
               date_add(date_trunc(l.period, now(), 'UTC'),
                        CASE l.period WHEN 'minute' THEN interval '1 minute'
                                      WHEN 'hour' THEN interval '1 hour' ELSE interval '1 day' END,
                        'UTC') AS we
          FROM llmbase.rate_limits l
         WHERE l.tenant_id = t
           AND (l.subject = 'tenant'
                OR (l.subject = 'user' AND l.user_id = u)
                OR (l.subject = 'api_key' AND l.api_key_id = p_api_key))
         ORDER BY l.id
    LOOP
        n := CASE r.metric WHEN 'requests' THEN p_requests ELSE p_tokens END;
        used := NULL;
        IF n > 0 AND NOT refused AND NOT p_dry_run THEN
            INSERT INTO llmbase.rate_limit_counters AS c
                   (tenant_id, limit_id, subject_key, window_start, window_end, used)
            SELECT t, r.id, r.k, r.ws, r.we, n
             WHERE n <= r.limit_value
            ON CONFLICT ON CONSTRAINT rate_limit_counters_pkey
            DO UPDATE SET used = c.used + EXCLUDED.used
                    WHERE c.used + EXCLUDED.used <= r.limit_value
            RETURNING c.used - n INTO used;  -- the use before this call; NULL: refused
        END IF;
        IF used IS NOT NULL THEN
            allowed := true;
            counted := counted || r.id;
            keys := keys || r.k;
            starts := starts || r.ws;
            amounts := amounts || n;
        ELSE
            -- Refused (the row is locked by the upsert above, so this reads its latest
            -- value), or a dry run, or nothing to count: compare the use with the limit.
            SELECT coalesce(max(c.used), 0) INTO used FROM llmbase.rate_limit_counters c
             WHERE c.tenant_id = t AND c.limit_id = r.id AND c.subject_key = r.k
               AND c.window_start = r.ws;
            allowed := CASE WHEN n > 0 THEN used + n <= r.limit_value ELSE used < r.limit_value END;
            refused := refused OR NOT allowed;
        END IF;
        limit_id := r.id; subject := r.subject; per_user := r.per_user; metric := r.metric;
        period := r.period; limit_value := r.limit_value; subject_key := r.k;
        window_start := r.ws; reset_at := r.we;
        RETURN NEXT;
    END LOOP;
    IF refused AND counted IS NOT NULL THEN
        -- Take back what this call counted (rows this transaction holds locked).
        UPDATE llmbase.rate_limit_counters c SET used = c.used - x.n
          FROM unnest(counted, keys, starts, amounts) AS x(id, k, ws, n)
         WHERE c.tenant_id = t AND c.limit_id = x.id AND c.subject_key = x.k
           AND c.window_start = x.ws;
    END IF;
END
$$;
COMMENT ON FUNCTION llmbase.consume_limits(bigint, bigint, uuid, uuid, boolean) IS
    'Atomic admit-and-count against every applicable rate limit (all or none); p_dry_run only checks.';

-- Correct token counters after a call (settle): add p_delta (negative: give back) to the
-- given (limit, subject key, window) counters of the current tenant, never below 0.
CREATE FUNCTION llmbase.adjust_limit_usage(
    p_limit_ids uuid[], p_subject_keys uuid[], p_windows timestamptz[], p_delta bigint
) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
    WITH todo AS (
        SELECT * FROM unnest(p_limit_ids, p_subject_keys, p_windows) AS x(limit_id, subject_key, window_start)
    ), done AS (
        UPDATE llmbase.rate_limit_counters c SET used = greatest(c.used + p_delta, 0)
          FROM todo
         WHERE c.tenant_id = llmbase.current_tenant_id() AND c.limit_id = todo.limit_id
           AND c.subject_key = todo.subject_key AND c.window_start = todo.window_start
        RETURNING 1
    )
    SELECT count(*)::integer FROM done
$$;

-- Reserve p_estimate USD (NULL: the model has no known price) under id p_id against every
-- budget that applies to the current tenant and user (or p_user in tenant-wide scope), all
-- or none. A hard budget admits only while spent + reserved + estimate <= cap, checked and
-- counted in one statement per budget; a soft one always admits and flags the overshoot.
-- An unpriced call reserves the budget's unpriced_call_usd; without one a hard budget
-- refuses it. Reservations expire after p_ttl_seconds. One row per applicable budget.
CREATE FUNCTION llmbase.reserve_budget(
    p_id uuid, p_estimate numeric, p_ttl_seconds integer DEFAULT 600, p_user uuid DEFAULT NULL,
    p_dry_run boolean DEFAULT false
) RETURNS TABLE (
    budget_id uuid, user_id uuid, per_user boolean, mode text, cap_usd numeric, spent_usd numeric,
    reserved_usd numeric, amount_usd numeric, allowed boolean, over_cap boolean, unpriced boolean,
    reset_at timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
#variable_conflict use_column
DECLARE
    t uuid := llmbase.current_tenant_id();
    u uuid := llmbase.current_user_id();
    zero constant uuid := '00000000-0000-0000-0000-000000000000';
    ps date := date_trunc('month', now(), 'UTC')::date;
    r record;
    amt numeric;
    k uuid;
    s numeric;
    rs numeric;
    ok boolean;
    refused boolean := false;
    done_b uuid[] := '{}';
    done_k uuid[] := '{}';
    done_a numeric[] := '{}';
    i int;
    attempt int;
BEGIN
    IF t IS NULL THEN
        RAISE EXCEPTION 'no tenant in this transaction' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_estimate < 0 OR p_ttl_seconds IS NULL OR p_ttl_seconds < 1 OR p_id IS NULL THEN
        RAISE EXCEPTION 'invalid reservation' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_user IS NOT NULL AND u IS DISTINCT FROM p_user THEN
        IF NOT llmbase.tenant_wide() THEN
            RAISE EXCEPTION 'a user scope may only reserve for itself' USING ERRCODE = 'insufficient_privilege';
        END IF;
        u := p_user;
    END IF;
    FOR r IN
        SELECT b.id, b.user_id, b.per_user, b.mode, b.cap_usd, b.unpriced_call_usd
          FROM llmbase.budgets b
         WHERE b.tenant_id = t AND (b.user_id IS NULL OR b.user_id = u)
         ORDER BY b.id
    LOOP
        k := CASE WHEN r.user_id IS NOT NULL OR r.per_user THEN coalesce(u, zero) ELSE zero END;
        amt := coalesce(p_estimate, r.unpriced_call_usd, CASE r.mode WHEN 'soft' THEN 0 END);
        s := NULL;
        ok := false;
        IF NOT refused AND NOT p_dry_run AND amt IS NOT NULL THEN
            FOR attempt IN 1 .. 2 LOOP
                INSERT INTO llmbase.budget_periods AS p (tenant_id, budget_id, subject_key, period_start, reserved_usd)
                SELECT t, r.id, k, ps, amt
                 WHERE r.mode = 'soft' OR amt <= r.cap_usd
                ON CONFLICT ON CONSTRAINT budget_periods_pkey
                DO UPDATE SET reserved_usd = p.reserved_usd + EXCLUDED.reserved_usd, updated_at = now()
                        WHERE r.mode = 'soft' OR p.spent_usd + p.reserved_usd + EXCLUDED.reserved_usd <= r.cap_usd
                RETURNING p.spent_usd, p.reserved_usd INTO s, rs;
                EXIT WHEN s IS NOT NULL OR attempt = 2;
                -- Refused: release this budget's expired reservations (a crashed caller's)
                -- and try once more, so they never block it until maintenance runs.
                WITH gone AS (
                    UPDATE llmbase.budget_reservations x SET released = true
                     WHERE x.tenant_id = t AND x.budget_id = r.id AND x.subject_key = k
                       AND x.period_start = ps AND NOT x.released AND x.expires_at < now()
                    RETURNING x.amount_usd
                )
                UPDATE llmbase.budget_periods p
                   SET reserved_usd = greatest(p.reserved_usd - (SELECT sum(amount_usd) FROM gone), 0)
                 WHERE p.tenant_id = t AND p.budget_id = r.id AND p.subject_key = k AND p.period_start = ps
                   AND (SELECT count(*) FROM gone) > 0;
                EXIT WHEN NOT FOUND;
            END LOOP;
            IF s IS NOT NULL THEN
                ok := true;
                rs := rs - amt;  -- report what was reserved before this call
                done_b := done_b || r.id;
                done_k := done_k || k;
                done_a := done_a || amt;
            END IF;
        END IF;
        IF s IS NULL THEN
            SELECT p.spent_usd, p.reserved_usd INTO s, rs FROM llmbase.budget_periods p
             WHERE p.tenant_id = t AND p.budget_id = r.id AND p.subject_key = k AND p.period_start = ps;
            s := coalesce(s, 0);
            rs := coalesce(rs, 0);
            ok := amt IS NOT NULL AND (r.mode = 'soft' OR s + rs + amt <= r.cap_usd);
            IF NOT ok THEN
                refused := true;
            END IF;
        END IF;
        budget_id := r.id; user_id := r.user_id; per_user := r.per_user; mode := r.mode;
        cap_usd := r.cap_usd; spent_usd := s; reserved_usd := rs; amount_usd := amt; allowed := ok;
        over_cap := s + rs + coalesce(amt, 0) > r.cap_usd; unpriced := p_estimate IS NULL;
        reset_at := (ps + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        RETURN NEXT;
    END LOOP;
    IF cardinality(done_b) = 0 THEN
        RETURN;
    END IF;
    IF refused THEN
        FOR i IN 1 .. cardinality(done_b) LOOP
            UPDATE llmbase.budget_periods p SET reserved_usd = p.reserved_usd - done_a[i]
             WHERE p.tenant_id = t AND p.budget_id = done_b[i] AND p.subject_key = done_k[i]
               AND p.period_start = ps;
        END LOOP;
    ELSE
        INSERT INTO llmbase.budget_reservations (tenant_id, id, budget_id, subject_key, period_start, amount_usd, expires_at)
        SELECT t, p_id, b, kk, ps, a, now() + make_interval(secs => p_ttl_seconds)
          FROM unnest(done_b, done_k, done_a) AS x(b, kk, a);
    END IF;
END
$$;
COMMENT ON FUNCTION llmbase.reserve_budget(uuid, numeric, integer, uuid, boolean) IS
    'Atomic reservation of an estimated cost against every applicable budget (all or none); hard budgets never overshoot.';

-- Settle reservation p_id of the current tenant to the actual cost (NULL: unknown, the
-- reserved amount is kept as spent): the reservation leaves `reserved` (unless it was
-- already released by expiry) and the cost is added to `spent`. With p_actual 0 and
-- p_cancel the call did not happen. Returns the number of budgets settled.
CREATE FUNCTION llmbase.settle_budget(p_id uuid, p_actual numeric, p_cancel boolean DEFAULT false)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET llmbase.admin = 'on'
AS $$
    WITH gone AS (
        DELETE FROM llmbase.budget_reservations x
         WHERE x.tenant_id = llmbase.current_tenant_id() AND x.id = p_id
        RETURNING x.tenant_id, x.budget_id, x.subject_key, x.period_start, x.amount_usd, x.released
    ), done AS (
        UPDATE llmbase.budget_periods p
           SET reserved_usd = greatest(p.reserved_usd - CASE WHEN g.released THEN 0 ELSE g.amount_usd END, 0),
               spent_usd = p.spent_usd + CASE WHEN p_cancel THEN 0 ELSE greatest(coalesce(p_actual, g.amount_usd), 0) END,
               updated_at = now()
          FROM gone g
         WHERE p.tenant_id = g.tenant_id AND p.budget_id = g.budget_id AND p.subject_key = g.subject_key
           AND p.period_start = g.period_start
        RETURNING 1
    )
    SELECT count(*)::integer FROM done
$$;

-- Maintenance (operator scope; `llmbase maintain` calls it): delete rate-limit counters of
-- windows that ended, release expired budget reservations (their amount stops counting as
-- reserved; a late settle still records the spend) and delete released reservations a day
-- after their expiry.
CREATE FUNCTION llmbase.limits_maintenance(
    OUT counters_deleted bigint, OUT reservations_released bigint, OUT reservations_deleted bigint
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    DELETE FROM llmbase.rate_limit_counters WHERE window_end <= now();
    GET DIAGNOSTICS counters_deleted = ROW_COUNT;
    WITH gone AS (
        UPDATE llmbase.budget_reservations x SET released = true
         WHERE NOT x.released AND x.expires_at < now()
        RETURNING x.tenant_id, x.budget_id, x.subject_key, x.period_start, x.amount_usd
    ), sums AS (
        SELECT g.tenant_id, g.budget_id, g.subject_key, g.period_start, sum(g.amount_usd) AS amount, count(*) AS n
          FROM gone g GROUP BY 1, 2, 3, 4
    ), upd AS (
        UPDATE llmbase.budget_periods p SET reserved_usd = greatest(p.reserved_usd - s.amount, 0), updated_at = now()
          FROM sums s
         WHERE p.tenant_id = s.tenant_id AND p.budget_id = s.budget_id AND p.subject_key = s.subject_key
           AND p.period_start = s.period_start
        RETURNING 1
    )
    SELECT coalesce(sum(n), 0) INTO reservations_released FROM sums;
    DELETE FROM llmbase.budget_reservations WHERE released AND expires_at < now() - interval '1 day';
    GET DIAGNOSTICS reservations_deleted = ROW_COUNT;
END
$$;
COMMENT ON FUNCTION llmbase.limits_maintenance() IS
    'Delete ended rate-limit windows, release expired budget reservations, purge old released ones (operator scope).';

-- ---------------------------------------------------------------------------------------
ALTER TABLE llmbase.rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.rate_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.rate_limits FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND (user_id IS NULL OR user_id = (SELECT llmbase.current_user_id()) OR (SELECT llmbase.tenant_wide())));
CREATE POLICY tenant_write ON llmbase.rate_limits FOR ALL
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.rate_limits TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.rate_limit_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.rate_limit_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.rate_limit_counters FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR subject_key IN ('00000000-0000-0000-0000-000000000000'::uuid,
                                                                 (SELECT llmbase.current_user_id()))));
CREATE POLICY admin_all ON llmbase.rate_limit_counters TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.budgets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.budgets FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND (user_id IS NULL OR user_id = (SELECT llmbase.current_user_id()) OR (SELECT llmbase.tenant_wide())));
CREATE POLICY tenant_write ON llmbase.budgets FOR ALL
    USING (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()))
    WITH CHECK (tenant_id = (SELECT llmbase.current_tenant_id()) AND (SELECT llmbase.tenant_wide()));
CREATE POLICY admin_all ON llmbase.budgets TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.budget_periods ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.budget_periods FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.budget_periods FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR subject_key IN ('00000000-0000-0000-0000-000000000000'::uuid,
                                                                 (SELECT llmbase.current_user_id()))));
CREATE POLICY admin_all ON llmbase.budget_periods TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

ALTER TABLE llmbase.budget_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE llmbase.budget_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON llmbase.budget_reservations FOR SELECT
    USING (tenant_id = (SELECT llmbase.current_tenant_id())
           AND ((SELECT llmbase.tenant_wide()) OR subject_key IN ('00000000-0000-0000-0000-000000000000'::uuid,
                                                                 (SELECT llmbase.current_user_id()))));
CREATE POLICY admin_all ON llmbase.budget_reservations TO llmbase_admin
    USING ((SELECT llmbase.admin_mode())) WITH CHECK ((SELECT llmbase.admin_mode()));

-- ---------------------------------------------------------------------------------------
-- The application role manages definitions (tenant-wide scope) and reads usage; usage is
-- written only through the functions.
GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.rate_limits, llmbase.budgets TO llmbase_app;
GRANT SELECT ON llmbase.rate_limit_counters, llmbase.budget_periods, llmbase.budget_reservations
    TO llmbase_app;

REVOKE ALL ON FUNCTION llmbase.consume_limits(bigint, bigint, uuid, uuid, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.adjust_limit_usage(uuid[], uuid[], timestamptz[], bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.reserve_budget(uuid, numeric, integer, uuid, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.settle_budget(uuid, numeric, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.limits_maintenance() FROM PUBLIC;
REVOKE ALL ON FUNCTION llmbase.rate_limits_drop_counters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llmbase.consume_limits(bigint, bigint, uuid, uuid, boolean),
    llmbase.adjust_limit_usage(uuid[], uuid[], timestamptz[], bigint),
    llmbase.reserve_budget(uuid, numeric, integer, uuid, boolean),
    llmbase.settle_budget(uuid, numeric, boolean) TO llmbase_app;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT SELECT ON llmbase.rate_limits, llmbase.budgets TO authenticated;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llmbase.rate_limits, llmbase.budgets TO service_role;
        GRANT SELECT ON llmbase.rate_limit_counters, llmbase.budget_periods, llmbase.budget_reservations
            TO service_role;
        GRANT EXECUTE ON FUNCTION llmbase.consume_limits(bigint, bigint, uuid, uuid, boolean),
            llmbase.adjust_limit_usage(uuid[], uuid[], timestamptz[], bigint),
            llmbase.reserve_budget(uuid, numeric, integer, uuid, boolean),
            llmbase.settle_budget(uuid, numeric, boolean) TO service_role;
    END IF;
END
$$;

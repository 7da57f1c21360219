-- llmbase 0006 down: rate limits and budgets, in reverse order of creation.
DROP FUNCTION llmbase.limits_maintenance();
DROP FUNCTION llmbase.settle_budget(uuid, numeric, boolean);
DROP FUNCTION llmbase.reserve_budget(uuid, numeric, integer, uuid, boolean);
DROP FUNCTION llmbase.adjust_limit_usage(uuid[], uuid[], timestamptz[], bigint);
DROP FUNCTION llmbase.consume_limits(bigint, bigint, uuid, uuid, boolean);
DROP TABLE llmbase.budget_reservations;
DROP TABLE llmbase.budget_periods;
DROP TABLE llmbase.budgets;
DROP TABLE llmbase.rate_limit_counters;
DROP TABLE llmbase.rate_limits;
DROP FUNCTION llmbase.rate_limits_drop_counters();

-- llmbase 0008 down: the audit log and its triggers.

DO $$
BEGIN
    IF to_regclass('llmbase.rate_limits') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS audit ON llmbase.rate_limits;
    END IF;
    IF to_regclass('llmbase.budgets') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS audit ON llmbase.budgets;
    END IF;
END $$;
DROP TRIGGER audit ON llmbase.collections;
DROP TRIGGER audit ON llmbase.model_prices;
DROP TRIGGER audit ON llmbase.tenant_settings;
DROP TRIGGER audit ON llmbase.api_keys;
DROP TRIGGER audit ON llmbase.users;
DROP TRIGGER audit ON llmbase.tenants;

DROP TABLE llmbase.audit_log;
DROP FUNCTION llmbase.erase_audit_user(uuid, uuid);
DROP FUNCTION llmbase.erase_audit_tenant(uuid);
DROP FUNCTION llmbase.audit_log_immutable();
DROP FUNCTION llmbase.audit_row_change();
DROP FUNCTION llmbase.audit_owner_gone(uuid, uuid);
DROP FUNCTION llmbase.audit_event(text, text, text, jsonb, jsonb, jsonb, uuid);
DROP FUNCTION llmbase.audit_write(uuid, text, uuid, text, text, text, jsonb, jsonb, jsonb);
DROP FUNCTION llmbase.audit_actor();

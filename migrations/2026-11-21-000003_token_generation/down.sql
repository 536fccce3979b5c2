DROP INDEX audit_log_account_idx;
ALTER TABLE accounts DROP COLUMN token_generation;

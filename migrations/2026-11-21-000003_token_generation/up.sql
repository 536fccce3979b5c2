-- Token revocation: a token is valid only while its `gen` claim (0 when absent, as in
-- tokens of an external identity provider) equals the account's generation. Revoking
-- an account's tokens increments it, which takes effect on the next request.
ALTER TABLE accounts ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_log_account_idx ON audit_log (tenant_id, account_id, id DESC);

-- A data version per account for the response cache (DESIGN section 6): every change
-- to what an account may see (permissions, shop scope, disabling, token revocation)
-- sets it from the same sequence as the shops' versions, so a cached response of the
-- account's is unreachable after the change.
ALTER TABLE accounts ADD COLUMN data_version BIGINT NOT NULL DEFAULT nextval('data_version_seq');

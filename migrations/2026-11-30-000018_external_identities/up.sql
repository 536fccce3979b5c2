-- People at an OpenID Connect provider (OIDC_ISSUERS) mapped to orderscope accounts:
-- a token of `issuer` whose subject claim is `subject` acts as `account_id`, with the
-- account's permissions and shop scope (narrowed further by the provider's roles when
-- they are mapped). Unlinking, or disabling the account, stops it on the next request.
CREATE TABLE external_identities (
    issuer     TEXT NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
    subject    TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    tenant_id  BIGINT NOT NULL REFERENCES tenants (id),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_account_idx ON external_identities (account_id);

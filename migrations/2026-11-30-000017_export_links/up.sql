-- Signed download links for BI tools that cannot send an Authorization header (Excel
-- "From Web", spreadsheet URL imports): a random token, stored only as its SHA-256,
-- names one export of one account. The export runs with the account's permissions and
-- scope at the moment of use; the link dies at expires_at, when revoked, when the
-- account is disabled, or when the account's tokens are revoked (token_generation).
CREATE TABLE export_links (
    id               BIGSERIAL PRIMARY KEY,
    token_sha256     BYTEA NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    tenant_id        BIGINT NOT NULL REFERENCES tenants (id),
    account_id       BIGINT NOT NULL REFERENCES accounts (id),
    token_generation INTEGER NOT NULL,
    -- The permission narrowing of the OIDC token the link was made with (bit i is the
    -- i-th permission in the GraphQL enum's order); NULL: none.
    permission_mask  INTEGER,
    path             TEXT NOT NULL CHECK (path IN ('/export/orders.csv', '/export/trend.csv', '/export/breakdown.csv')),
    query            TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at       TIMESTAMPTZ NOT NULL,
    revoked_at       TIMESTAMPTZ,
    used_count       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX export_links_account_idx ON export_links (account_id);

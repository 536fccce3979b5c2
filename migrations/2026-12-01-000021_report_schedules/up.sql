-- Scheduled reports: the daily report or a CSV export, delivered every day at a local
-- time of day as a signed webhook POST. Each run is one row of report_deliveries
-- (unique per schedule and instant, so that several nodes create it once), claimed by
-- one node at a time with a lease, retried with backoff.
CREATE TABLE report_schedules (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    BIGINT      NOT NULL REFERENCES tenants (id),
    -- The report runs as this account, with its permissions and scope at run time.
    account_id   BIGINT      NOT NULL REFERENCES accounts (id),
    -- 'DAILY_REPORT' or an export path with its query string ('/export/...').
    report       TEXT        NOT NULL CHECK (length(report) BETWEEN 1 AND 4000),
    time_of_day  TIME        NOT NULL,
    timezone     TEXT        NOT NULL,
    url          TEXT        NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    -- The HMAC-SHA256 key of the signature header (shown once at creation).
    secret       TEXT        NOT NULL,
    next_run_at  TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at   TIMESTAMPTZ
);
CREATE INDEX report_schedules_due ON report_schedules (next_run_at) WHERE deleted_at IS NULL;
CREATE INDEX report_schedules_tenant ON report_schedules (tenant_id);

CREATE TABLE report_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    schedule_id     BIGINT      NOT NULL REFERENCES report_schedules (id),
    scheduled_for   TIMESTAMPTZ NOT NULL,
    -- PENDING (not yet tried, or leased while a node sends it), RETRYING, DELIVERED, FAILED
    status          TEXT        NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'RETRYING', 'DELIVERED', 'FAILED')),
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_status     INT,
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    UNIQUE (schedule_id, scheduled_for)
);
CREATE INDEX report_deliveries_due ON report_deliveries (next_attempt_at)
    WHERE status IN ('PENDING', 'RETRYING');

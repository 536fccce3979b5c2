-- A data version per shop for the aggregate cache (DESIGN section 6): every write
-- transaction sets its shops' versions from this sequence before it commits, and the
-- cache key holds the versions of the shops an answer read, so a committed write makes
-- every older entry unreachable. The sequence starts from the clock, so a database
-- that is dropped and created again never reuses an earlier database's versions.
CREATE SEQUENCE data_version_seq;
SELECT setval('data_version_seq', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
ALTER TABLE shops ADD COLUMN data_version BIGINT NOT NULL DEFAULT nextval('data_version_seq');

ALTER TABLE shops DROP COLUMN data_version;
DROP SEQUENCE data_version_seq;

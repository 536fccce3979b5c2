ALTER TABLE accounts DROP COLUMN data_version;

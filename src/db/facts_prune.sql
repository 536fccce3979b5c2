-- Entries of finished transactions older than $1 seconds go; `below` records the
-- first xid whose entries are all still there.
WITH gone AS (
    DELETE FROM change_log
     WHERE at < now() - make_interval(secs => $1)
       AND xid < pg_snapshot_xmin(pg_current_snapshot())
    RETURNING xid::text::numeric AS xid
)
UPDATE change_log_pruned
   SET below = greatest(below::text::numeric, (SELECT max(xid) + 1 FROM gone))::text::xid8
 WHERE EXISTS (SELECT 1 FROM gone)

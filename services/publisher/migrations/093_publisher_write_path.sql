-- The publisher's write path, from where PostgreSQL spent its time in `bench pipeline`
-- (pg_stat_statements and the plans of the slow statements; docs/performance.md,
-- "PostgreSQL's share"). The planner's statistics lag tables that grow within minutes, so
-- each statement of a batch must have an index that leads with what it looks up.

-- Whether a notice was revoked is asked as `NOT EXISTS (SELECT 1 FROM notices r WHERE
-- r.revokes = n.notice_id)` (store.unrevoked_notices, store.unrevoked_notices_naming, the
-- latter on every batch of snapshots). Without an index on `revokes` the planner chose a
-- nested-loop anti join over a sequential scan of every notice for each candidate: up to
-- 0.8 s a batch, a quarter of PostgreSQL's time in the run. Partial: most notices revoke
-- nothing and cost this index no write.
CREATE INDEX notices_revokes ON notices (revokes) WHERE revokes IS NOT NULL;

-- No statement reads notices by (agency, issued_at) since the agencies' feed reads them by
-- (agency, seq) (060, notices_agency_seq); every notice paid for this index twice (its
-- insert and its numbering, which is not a HOT update).
DROP INDEX notices_agency;

-- The open entries of a batch's subjects are locked by `subject_key = ANY($1)` with
-- status pending or active (store.lock_open_entries, every batch). The partial unique index
-- matched that predicate but led with `list`, so the planner scanned the whole index once
-- per subject key (a key on its second column): 0.2-0.4 s a batch. The same uniqueness,
-- subject first.
CREATE UNIQUE INDEX list_entries_open_by_subject ON list_entries (subject_key, list)
    WHERE status IN ('pending', 'active');
DROP INDEX list_entries_one_open;
ALTER INDEX list_entries_open_by_subject RENAME TO list_entries_one_open;

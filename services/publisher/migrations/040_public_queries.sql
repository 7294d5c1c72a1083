-- The public query side (docs/decisions.md, "Public search"; docs/performance.md).

-- A broad name fragment (珠海, 有限公司: most of the city) is served in a fixed order that
-- this index gives, the first 8 hex digits of the MD5 of the subject key: the scan stops
-- once a page is full instead of ranking every match. MD5 scatters matches evenly over that
-- order whatever the name or type, so a page costs about (rows needed) / (share of names
-- that match) index entries, which the publisher estimates before choosing it. The
-- included columns let the match and the filters be checked in the index alone.
CREATE INDEX subjects_search_order
    ON subjects ((left(md5(subject_key), 8) COLLATE "C"), subject_key)
    INCLUDE (name_norm, type, discoverable_until, id) WHERE discoverable;

-- An exact name comes first in a broad search's answer.
CREATE INDEX subjects_name_exact ON subjects (name_norm) WHERE discoverable;

-- The publisher reads each bigram's share of names from the planner's statistics
-- (pg_stats.most_common_elems) to choose between the bigram index and the ordered scan;
-- 1,000 tracks the 10,000 most common bigrams, from a sample of 300,000 rows.
ALTER TABLE subjects ALTER COLUMN name_grams SET STATISTICS 1000;
ANALYZE subjects;

-- A list's page: its active members, newest first, read in index order a page at a time.
CREATE INDEX list_entries_members
    ON list_entries (list, since DESC, entry_id) WHERE status = 'active';

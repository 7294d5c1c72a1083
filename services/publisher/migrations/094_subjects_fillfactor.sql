-- A subject's new snapshot (a record added, changed or withdrawn) mostly keeps its name and
-- its discoverability, so no indexed column of `subjects` changes: PostgreSQL can then
-- write the new row version on the same page (a HOT update) and leave every index alone,
-- the bigram GIN index with its ~20 entries a name among them. It can only if the page has
-- room, and a page filled to 100 % (the default) has none: every snapshot of a known
-- subject rewrote all five indexes. 80 % leaves room for about one new version of a ~1 KB
-- snapshot a page until the old one is pruned. Measured (docs/performance.md, "Publisher
-- (issue 9)"): 20,000 snapshots of known subjects, names unchanged, 25-60 % HOT and a
-- fifth less backend CPU; new subjects cost the same. Pages written from now on.
ALTER TABLE subjects SET (fillfactor = 80);

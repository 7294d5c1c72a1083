-- The operators' gauge of notices awaiting feedback (services/publisher/gauges.py, every
-- probe, 15 s) counts them per agency and measure, and those past `due_by`. It read the
-- whole table: on a city's 470,000 notices a parallel scan of 140 ms in three processes,
-- which on two cores stalled the public API every 15 s (docs/performance.md, "The public
-- query targets, held"). With the measure in this index the count is an index-only scan
-- (about 80 ms on one core). The index (agency, due_by) it replaces served no other query.
DROP INDEX IF EXISTS notices_awaiting;
CREATE INDEX notices_awaiting ON notices (agency, measure, due_by)
    WHERE feedback_status IS NULL OR feedback_status = 'received';

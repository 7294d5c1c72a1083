-- The operators' gauge of notices awaiting feedback (services/publisher/gauges.py, every
-- probe) read its counts from the notices themselves: O(backlog) at every probe, 83 ms of
-- one core on a city's 470,000 waiting notices, counted in slices beside the public API.
-- Now the counts are kept as notices change, so a probe reads a few rows whatever the city.
--
-- A statement-level trigger on `notices` writes one delta row per (agency, measure, due_by)
-- a statement moved in or out of "awaiting" (no feedback yet, or only `received`). Deltas
-- are only ever inserted: a batch never waits for another batch on a shared count row.
-- The gauge folds them into `notices_awaiting_counts` (store.awaiting_counts) and reads both.

CREATE TABLE notices_awaiting_counts (
    agency  text   NOT NULL,
    measure text   NOT NULL,
    due_by  date,
    n       bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (agency, measure, due_by)
);

CREATE TABLE notices_awaiting_deltas (
    agency  text   NOT NULL,
    measure text   NOT NULL,
    due_by  date,
    n       bigint NOT NULL
);

-- "Awaiting" as the index `notices_awaiting` had it (migration 095), which served only the
-- gauge's count and goes; tests/db/test_observability.py checks the counts against a count
-- of the notices.
CREATE FUNCTION notices_awaiting_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notices_awaiting_deltas (agency, measure, due_by, n)
        SELECT agency, measure, due_by, count(*) FROM new_rows
        WHERE feedback_status IS NULL OR feedback_status = 'received'
        GROUP BY agency, measure, due_by;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO notices_awaiting_deltas (agency, measure, due_by, n)
        SELECT agency, measure, due_by, -count(*) FROM old_rows
        WHERE feedback_status IS NULL OR feedback_status = 'received'
        GROUP BY agency, measure, due_by;
    ELSE
        INSERT INTO notices_awaiting_deltas (agency, measure, due_by, n)
        SELECT agency, measure, due_by, sum(d) FROM (
            SELECT agency, measure, due_by, 1 AS d FROM new_rows
            WHERE feedback_status IS NULL OR feedback_status = 'received'
            UNION ALL
            SELECT agency, measure, due_by, -1 FROM old_rows
            WHERE feedback_status IS NULL OR feedback_status = 'received') moved
        GROUP BY agency, measure, due_by HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION notices_awaiting_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM notices_awaiting_deltas;
    DELETE FROM notices_awaiting_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER notices_awaiting_inserted AFTER INSERT ON notices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notices_awaiting_moved();
CREATE TRIGGER notices_awaiting_updated AFTER UPDATE ON notices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notices_awaiting_moved();
CREATE TRIGGER notices_awaiting_deleted AFTER DELETE ON notices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notices_awaiting_moved();
CREATE TRIGGER notices_awaiting_truncated AFTER TRUNCATE ON notices
    FOR EACH STATEMENT EXECUTE FUNCTION notices_awaiting_truncated();

DROP INDEX notices_awaiting;

-- What waits already (CREATE TRIGGER has locked out writers until this commits).
INSERT INTO notices_awaiting_counts (agency, measure, due_by, n)
SELECT agency, measure, due_by, count(*) FROM notices
WHERE feedback_status IS NULL OR feedback_status = 'received'
GROUP BY agency, measure, due_by;

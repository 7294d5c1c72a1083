-- The relay sends a committed batch's events from memory (shared/outbox.py) and reads from
-- the table only what it does not hold: rows other processes wrote, rows a crash left
-- behind. One call deletes what the previous round sent and returns the rows in the gaps
-- between the ids it holds (each gap an open interval lo < id < hi), in id order: one round
-- trip per round, and its own rows are neither read back nor sent twice.
CREATE FUNCTION outbox_take(sent bigint[], gap_lo bigint[], gap_hi bigint[], lim int)
RETURNS SETOF outbox LANGUAGE sql AS $$
    DELETE FROM outbox WHERE id = ANY(sent);
    SELECT o.* FROM unnest(gap_lo, gap_hi) AS g(lo, hi),
        LATERAL (SELECT * FROM outbox WHERE id > g.lo AND id < g.hi ORDER BY id LIMIT lim) o
    ORDER BY o.id LIMIT lim;
$$;

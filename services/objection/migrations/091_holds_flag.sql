-- Whether an objection keeps its record disputed: from its routing until its decision, and
-- after an upheld one until the correction. The record's flag is lifted only when no
-- objection holds it, and an objection about a revision the department has already
-- examined and rejected on an objection holds none (docs/decisions.md, "One objection's
-- decision lifts no other's flag").
ALTER TABLE objections ADD COLUMN holds_flag boolean NOT NULL DEFAULT false;
UPDATE objections SET holds_flag = true
    WHERE kind = 'objection' AND (status = 'routed' OR correction_awaited);
CREATE INDEX objections_holding_flag ON objections (department, record_id) WHERE holds_flag;

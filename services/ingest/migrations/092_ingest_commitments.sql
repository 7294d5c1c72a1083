-- Public credit commitments (守信公开承诺): the state of each commitment record as its latest
-- accepted revision left it, so that a breach of an unknown or already breached commitment
-- is refused naming the field (shared/commitments.py). NULL for every other record.
ALTER TABLE records
    ADD COLUMN commitment_state text CHECK (commitment_state IN ('kept', 'breached'));

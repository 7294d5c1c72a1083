-- Government integrity (政务诚信): each default of a government body (services/publisher/
-- government.py), with the district it counts in, the day it opened and the day it was first
-- held resolved (withdrawn or repaired), so the district figures are one exact query.
CREATE TABLE government_defaults (
    department   text NOT NULL,
    record_id    text NOT NULL,
    subject_key  text NOT NULL,
    default_kind text NOT NULL,
    district     text NOT NULL,
    opened_on    date NOT NULL,
    resolved_on  date,
    PRIMARY KEY (department, record_id)
);
CREATE INDEX government_defaults_opened ON government_defaults (opened_on);

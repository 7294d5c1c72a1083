-- How many times the service started on this database (shared/probes.py::record_start): the
-- `xinyong_service_starts_total` counter goes on across restarts, so a crash loop shows even
-- when no process lives long enough to be scraped twice.
CREATE TABLE service_starts (
    service         text        PRIMARY KEY,
    starts          bigint      NOT NULL,
    last_started_at timestamptz NOT NULL DEFAULT now()
);

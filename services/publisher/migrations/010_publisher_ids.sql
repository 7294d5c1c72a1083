-- List changes are numbered per entry to give each its event id (services/publisher/domain.py
-- `list_change_id`): counting them must not scan the whole feed.
CREATE INDEX list_changes_entry ON list_changes (entry_id);

-- SQLite has no cross-process notifications: the store announces new events in-process
-- after each commit, and followers in other processes poll. Kept so both backends share
-- one migration history.
SELECT 1;

-- The dealer's local time, as minutes east of UTC (China Standard Time, +480, when NULL).
-- Business dates (a delivery's commission month, "today" for care plans and reminders, the
-- whole days of a reporting period) are read in it.
ALTER TABLE org_units ADD COLUMN utc_offset_minutes BIGINT
    CHECK (utc_offset_minutes BETWEEN -720 AND 840);

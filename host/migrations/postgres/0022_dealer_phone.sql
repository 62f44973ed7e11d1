-- The phone number owners call their dealer on: shown on the owner's pages (a link's footer,
-- and the page of a link that expired or was used).
ALTER TABLE org_units ADD COLUMN phone TEXT;

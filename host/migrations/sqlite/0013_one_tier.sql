-- One tier vocabulary, the loyalty plugins' (银卡, 金卡, 铂金 by default): the customer record
-- holds the tier, and the loyalty account no longer keeps a second copy that could disagree.
UPDATE customers SET member_tier = (
    SELECT a.tier FROM loyalty_accounts a WHERE a.customer_id = customers.id
) WHERE EXISTS (
    SELECT 1 FROM loyalty_accounts a WHERE a.customer_id = customers.id AND a.tier IS NOT NULL
);
UPDATE customers SET member_tier = CASE member_tier
    WHEN 'standard' THEN '银卡'
    WHEN 'silver' THEN '银卡'
    WHEN 'gold' THEN '金卡'
    WHEN 'platinum' THEN '铂金'
    ELSE member_tier
END;
ALTER TABLE loyalty_accounts DROP COLUMN tier;

-- What an order sold that the delivered car keeps: the insurer and expiry of the policy sold
-- with it, and the allocated car's component batches (a JSON array of {component, batch}).
ALTER TABLE sales_orders ADD COLUMN insurer TEXT;
ALTER TABLE sales_orders ADD COLUMN insurance_expiry TEXT;
ALTER TABLE sales_orders ADD COLUMN components TEXT NOT NULL DEFAULT '[]';

-- redis_gate: a stock gate in Redis decides the orders; PostgreSQL stays the record, and the gate is rebuilt from
-- it (flashsale/stock_gate). Each rebuild of a sale's gate takes the next epoch here, under the sale row's lock, and
-- every order the gate admits is written only while its epoch is still the sale's (a fencing token): an order
-- admitted by a gate that has been rebuilt since is refused here and decided again by the new gate, so that no
-- order is counted by the database and missed by the gate, or the other way round.
ALTER TABLE flash_sales ADD COLUMN gate_epoch bigint NOT NULL DEFAULT 0;

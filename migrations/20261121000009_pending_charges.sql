-- The payment sweep looks for confirm charges left pending (the api died mid-charge, or the
-- provider never answered) to finish them; pending rows are few, the ledger is not.
CREATE INDEX charges_pending_idx ON charges (created_at) WHERE status = 'pending';

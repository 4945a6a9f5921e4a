-- 0006: the overview now reads each failing delivery's reason from its
-- own rs (delivery_status_in's rule, in overview_sql.go), so the view it
-- joined for them has no reader left.
DROP VIEW IF EXISTS delivery_failure_reasons_in
;

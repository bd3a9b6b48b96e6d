-- DELETE of one row, walking the rows inserted after the initial load in id
-- order (bench_del_seq), so every transaction deletes exactly one row.
-- The scalar subquery makes nextval run once, not once per scanned row.
DELETE FROM bench_src WHERE id = (SELECT nextval('bench_del_seq'));

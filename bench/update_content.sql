-- UPDATE of the loaded column: queues the key. The :run prefix lets the
-- driver count the distinct keys this measurement changed.
\set id random(1, :nrows)
\set r random(1, 1000000000)
UPDATE bench_src SET content = :run || ' ' || :r || ' ' || :content WHERE id = :id;

-- The same content update on a small hot set (ids 1..:hot), so that every key
-- is changed many times: shows how the queue grows per update vs per key.
\set id random(1, :hot)
\set r random(1, 1000000000)
UPDATE bench_src SET content = :run || ' ' || :r || ' ' || :content WHERE id = :id;

-- UPDATE of a column no vectorizer reads: must not queue any work.
\set id random(1, :nrows)
UPDATE bench_src SET views = views + 1 WHERE id = :id;

-- INSERT of one row with ~2 KB of content. :content (the 2 KB text), :run
-- (a token unique to the measurement) are passed with -D; with -M prepared
-- they travel as parameters, as an application's would.
\set r random(1, 1000000000)
INSERT INTO bench_src (title, content, views) VALUES ('title ' || :r, :run || ' ' || :r || ' ' || :content, 0);

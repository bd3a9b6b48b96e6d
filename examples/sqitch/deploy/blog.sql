BEGIN;
CREATE TABLE blog (id int PRIMARY KEY, title text NOT NULL, content text);
COMMIT;

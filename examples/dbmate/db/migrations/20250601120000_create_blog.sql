-- migrate:up
CREATE TABLE blog (
    id      int PRIMARY KEY,
    title   text,
    content text
);

-- migrate:down
DROP TABLE blog;

CREATE TABLE blog (
    id      int PRIMARY KEY,
    title   text,
    content text
);

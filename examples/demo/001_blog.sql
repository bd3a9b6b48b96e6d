-- A plain table a team wants embeddings for, with a few rows.
CREATE TABLE blog (
    id      int PRIMARY KEY,
    title   text NOT NULL,
    content text NOT NULL,
    views   int NOT NULL DEFAULT 0
);

INSERT INTO blog (id, title, content) VALUES
    (1, 'Getting started', 'Vectorizers keep embeddings in sync. They are schema, so they live in migrations.'),
    (2, 'Chunking', 'Long posts are split into overlapping chunks. Each chunk gets its own embedding.'),
    (3, 'Queues', 'Every change to a row that matters is queued once. A worker drains the queue.');

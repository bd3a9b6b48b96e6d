// node-pg-migrate runs all pending migrations in one transaction by default:
// set the label right before the call it belongs to. pgm.sql() without
// arguments passes the text through unchanged (braces included).
const LABEL = "1748779260000_blog-vectorizer";
const CONFIG = {
  source: "blog",
  name: "blog_content_embedder",
  destination: { implementation: "table", destination: "blog_embeddings" },
  loading: { implementation: "column", column_name: "content" },
  embedding: { implementation: "openai", model: "text-embedding-3-small", dimensions: 768 },
  formatting: { implementation: "python_template", template: "$title - $chunk" },
};
const literal = (s) => `'${s.replace(/'/g, "''")}'`;

exports.up = (pgm) => {
  pgm.sql(`SET LOCAL migrate.revision_label = ${literal(LABEL)}`);
  pgm.sql(`SELECT migrate.create_vectorizer(${literal(JSON.stringify(CONFIG))}::jsonb)`);
};

exports.down = (pgm) => {
  pgm.sql(`SET LOCAL migrate.revision_label = ${literal(LABEL)}`);
  pgm.sql(`SELECT migrate.drop_vectorizer(${literal(CONFIG.name)}, drop_all => true)`);
};

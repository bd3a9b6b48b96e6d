// Knex runs a batch of migrations in one transaction: set the label right
// before the call it belongs to. Values go in as bindings (knex.raw reads
// every "?" in the SQL text as one).
const LABEL = "20250601120100_blog_vectorizer";
const CONFIG = {
  source: "blog",
  name: "blog_content_embedder",
  destination: { implementation: "table", destination: "blog_embeddings" },
  loading: { implementation: "column", column_name: "content" },
  embedding: { implementation: "openai", model: "text-embedding-3-small", dimensions: 768 },
  formatting: { implementation: "python_template", template: "$title - $chunk" },
};

exports.up = async (knex) => {
  await knex.raw("SELECT set_config('migrate.revision_label', ?, true)", [LABEL]);
  await knex.raw("SELECT migrate.create_vectorizer(CAST(? AS jsonb))", [JSON.stringify(CONFIG)]);
};

exports.down = async (knex) => {
  await knex.raw("SELECT set_config('migrate.revision_label', ?, true)", [LABEL]);
  await knex.raw("SELECT migrate.drop_vectorizer(?, drop_all => true)", [CONFIG.name]);
};

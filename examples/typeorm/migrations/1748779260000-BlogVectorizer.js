// Values go in as parameters ($1), so the JSON needs no quoting.
const LABEL = "1748779260000-BlogVectorizer";
const CONFIG = {
  source: "blog",
  name: "blog_content_embedder",
  destination: { implementation: "table", destination: "blog_embeddings" },
  loading: { implementation: "column", column_name: "content" },
  embedding: { implementation: "openai", model: "text-embedding-3-small", dimensions: 768 },
  formatting: { implementation: "python_template", template: "$title - $chunk" },
};

module.exports = class BlogVectorizer1748779260000 {
  name = "BlogVectorizer1748779260000";

  async up(queryRunner) {
    // set_config(..., true) is SET LOCAL; migrationsTransactionMode "each"
    // gives every migration its own transaction.
    await queryRunner.query("SELECT set_config('migrate.revision_label', $1, true)", [LABEL]);
    await queryRunner.query("SELECT migrate.create_vectorizer($1::jsonb)", [JSON.stringify(CONFIG)]);
  }

  async down(queryRunner) {
    await queryRunner.query("SELECT set_config('migrate.revision_label', $1, true)", [LABEL]);
    await queryRunner.query("SELECT migrate.drop_vectorizer($1, drop_all => true)", [CONFIG.name]);
  }
};

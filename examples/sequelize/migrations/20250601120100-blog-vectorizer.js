"use strict";

// sequelize-cli runs each migration outside a transaction, so the revision
// label goes in as the functions' `label` argument (a set_config(…, true)
// would end with its own statement). Values go in as bind parameters.
const LABEL = "20250601120100-blog-vectorizer";
const CONFIG = {
  source: "blog",
  name: "blog_content_embedder",
  destination: { implementation: "table", destination: "blog_embeddings" },
  loading: { implementation: "column", column_name: "content" },
  embedding: { implementation: "openai", model: "text-embedding-3-small", dimensions: 768 },
  formatting: { implementation: "python_template", template: "$title - $chunk" },
};

module.exports = {
  async up(queryInterface) {
    await queryInterface.sequelize.query(
      "SELECT migrate.create_vectorizer(CAST($1 AS jsonb), $2)",
      { bind: [JSON.stringify(CONFIG), LABEL] }
    );
  },
  async down(queryInterface) {
    await queryInterface.sequelize.query(
      "SELECT migrate.drop_vectorizer($1, drop_all => true, label => $2)",
      { bind: [CONFIG.name, LABEL] }
    );
  },
};

exports.up = (knex) =>
  knex.schema.createTable("blog", (t) => {
    t.integer("id").primary();
    t.text("title");
    t.text("content");
  });

exports.down = (knex) => knex.schema.dropTable("blog");

// TypeORM data source (CommonJS, no decorators). Connection from the libpq
// environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
const { DataSource, EntitySchema } = require("typeorm");

const Blog = new EntitySchema({
  name: "Blog",
  tableName: "blog",
  columns: {
    id: { type: "int", primary: true },
    title: { type: "text", nullable: true },
    content: { type: "text", nullable: true },
  },
});

module.exports = {
  Blog,
  default: new DataSource({
    type: "postgres",
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT || 5432),
    username: process.env.PGUSER,
    database: process.env.PGDATABASE,
    entities: [Blog],
    migrations: [__dirname + "/migrations/*.js"],
    // TypeORM only compares the tables of its entities; it never drops a
    // table it does not know, so the vectorizer's relations need no filter.
    // Keep synchronize off and let migrations change the schema.
    synchronize: false,
    migrationsTransactionMode: "each",
  }),
};

import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./schema.ts",
  out: "./drizzle",
  dbCredentials: {
    host: process.env.PGHOST ?? "localhost",
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER ?? "postgres",
    database: process.env.PGDATABASE ?? "postgres",
    ssl: false,
  },
  // Only the application's schema: the extension's schema `migrate` (catalog,
  // history, queues) is never introspected.
  schemaFilter: ["public"],
  // Every table and view but the vectorizers' stores and views. Keep these
  // patterns in step with the names managed_tables() lists (the defaults are
  // <table>_embedding_store / <table>_embedding, or <destination>_store /
  // <destination> with a destination).
  tablesFilter: ["*", "!blog_embeddings_store", "!blog_embeddings"],
});

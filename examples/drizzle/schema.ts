import { integer, pgTable, text } from "drizzle-orm/pg-core";

// Only the application's table. The vectorizer's store table, view and
// queues are made by migrate.create_vectorizer() and filtered out in
// drizzle.config.ts.
export const blog = pgTable("blog", {
  id: integer("id").primaryKey(),
  title: text("title"),
  content: text("content"),
});

// Prisma 6 with the JavaScript schema engine and @prisma/adapter-pg: the
// engine ships in the npm package (the classic one is a binary Prisma
// downloads from its own server at run time).
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";

// prisma/orm#27403: @prisma/adapter-pg 6 rejects columns of PostgreSQL's
// internal types ("char", name, regproc, …), which the schema engine's
// catalog queries return. Their text form is what the engine wants: report
// them as text (OID 25) and their arrays as text[] (OID 1009).
const AS_TEXT: Record<number, number> = { 18: 25, 19: 25, 22: 25, 24: 25, 30: 25, 194: 25, 2205: 25, 1002: 1009, 1003: 1009 };
const addFields = pg.Result.prototype.addFields;
pg.Result.prototype.addFields = function (fields) {
  addFields.call(this, fields);
  for (const field of this.fields) field.dataTypeID = AS_TEXT[field.dataTypeID] ?? field.dataTypeID;
};

export default defineConfig({
  experimental: { adapter: true, externalTables: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  async adapter() {
    // idle connections close after 0.1 s (pg's default is 10 s, which the CLI
    // waits out before it exits)
    return new PrismaPg({ connectionString: process.env.DATABASE_URL, idleTimeoutMillis: 100 });
  },
  // The vectorizer's store table is the extension's: Prisma neither
  // migrates nor drops it (its view is not read without the views
  // preview feature, and schema migrate not outside the default schema).
  tables: { external: ["public.blog_embeddings_store"] },
  migrations: {
    path: "prisma/migrations",
    // Prisma diffs external tables against a shadow database set up with this.
    initShadowDb: "CREATE EXTENSION IF NOT EXISTS pgai_migrate CASCADE;",
  },
});

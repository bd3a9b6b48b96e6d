// Connection from the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
module.exports = {
  client: "pg",
  connection: {
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT || 5432),
    user: process.env.PGUSER,
    database: process.env.PGDATABASE,
  },
  migrations: { directory: "./migrations" },
};

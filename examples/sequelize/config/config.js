// The database from libpq's environment (PGHOST may be a socket directory).
const db = {
  dialect: "postgres",
  host: process.env.PGHOST,
  port: Number(process.env.PGPORT || 5432),
  username: process.env.PGUSER,
  password: process.env.PGPASSWORD,
  database: process.env.PGDATABASE,
  logging: false,
};
module.exports = { development: db, production: db };

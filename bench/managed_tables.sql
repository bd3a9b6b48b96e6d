-- What an introspection tool runs: every managed relation.
SELECT * FROM migrate.managed_tables();

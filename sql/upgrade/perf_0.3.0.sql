-- For the update script after 0.2.0 (pgai_migrate--0.2.0--0.3.0.sql):
-- each existing vectorizer gains its statement-level trigger
-- (_vectorizer_src_trg_<id>_stmt, AFTER INSERT OR DELETE OR UPDATE OF
-- <read columns> FOR EACH STATEMENT), with which its row triggers collect
-- the keys of a multi-row statement and the statement writes them at
-- once. Until this runs, the row triggers of those vectorizers write per
-- row, as 0.2.0 did: nothing is lost. Vectorizers created with this
-- library already have it; running this twice adds nothing.
CREATE FUNCTION migrate._upgrade_add_statement_triggers() RETURNS void LANGUAGE c
AS 'MODULE_PATHNAME', 'upgrade_add_statement_triggers_wrapper';
SELECT migrate._upgrade_add_statement_triggers();
DROP FUNCTION migrate._upgrade_add_statement_triggers();

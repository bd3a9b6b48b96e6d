"""Privileges beyond tests/test_identifiers_and_security.py: dropping by id,
role membership, schema privileges for every place a config can put an
object, and attempts to use the extension (which runs its DDL as the
extension owner) to act on objects the caller could not touch themselves."""

import json

import psycopg
import pytest
from psycopg import sql

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer, queued, trigger_count

# The server neither restarts nor logs a crash during this module.
pytestmark = pytest.mark.usefixtures("server_watch")


def own_config(table, name, **extra):
    """A minimal config over a table with (id int PRIMARY KEY, content text)."""
    return {
        "source": table,
        "name": name,
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": {"implementation": "openai", "model": "m", "dimensions": 3},
        "destination": {"implementation": "table", "destination": f"{name}_e"},
        **extra,
    }


@pytest.fixture
def setup(dbname, roles):
    """alice owns blog; bob and mallory are other roles. Everyone may use
    schema migrate and create in public (like test_identifiers_and_security)."""
    alice, bob, mallory = roles("alice"), roles("bob"), roles("mallory")
    with connect(dbname) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA migrate TO "{alice}", "{bob}", "{mallory}"')
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{alice}", "{bob}", "{mallory}"')
        create_blog(admin)
        admin.execute(f'ALTER TABLE blog OWNER TO "{alice}"')
    yield alice, bob, mallory
    with connect(dbname) as admin:
        admin.execute(f'DROP OWNED BY "{alice}", "{bob}", "{mallory}" CASCADE')


def count(conn, what):
    return conn.execute(f"SELECT count(*) FROM {what}").fetchone()[0]


# --- dropping -----------------------------------------------------------------


@pytest.mark.parametrize("call", ["SELECT migrate.drop_vectorizer(1)", "SELECT migrate.drop_vectorizer(1, true)", "SELECT migrate.drop_vectorizer(vectorizer_id => 1, drop_all => true)"])
def test_non_owner_cannot_drop_by_id(dbname, setup, call):
    alice, _, mallory = setup
    with connect(dbname, user=alice) as c:
        assert create_vectorizer(c, BLOG_CONFIG) == 1
    with connect(dbname, user=mallory) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute(call)
        assert e.value.diag.message_primary == 'must be owner of the source table of vectorizer "blog_content_embedder" to drop it'
        assert count(c, "migrate.vectorizer") == 1
        assert count(c, "migrate.revision") == 1
    with connect(dbname) as admin:
        assert trigger_count(admin) == 4
        assert admin.execute("SELECT to_regclass('migrate._vectorizer_q_1') IS NOT NULL, to_regclass('blog_embeddings_store') IS NOT NULL").fetchone() == (True, True)


def test_unknown_id_is_42704_for_anyone(dbname, setup):
    _, _, mallory = setup
    with connect(dbname, user=mallory) as c:
        with pytest.raises(psycopg.errors.UndefinedObject):
            c.execute("SELECT migrate.drop_vectorizer(999)")


# --- role membership ----------------------------------------------------------------


def test_member_of_owning_role_can_create_and_drop(dbname, setup):
    alice, bob, _ = setup
    with connect(dbname) as admin:
        admin.execute(f'GRANT "{alice}" TO "{bob}"')
    with connect(dbname, user=bob) as c:
        vid = create_vectorizer(c, BLOG_CONFIG)
        # Everything belongs to the table's owner, not to the member who ran it.
        owners = c.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM migrate.managed_tables() m JOIN pg_class c ON c.oid = m.relid"
        ).fetchall()
        assert owners == [(alice,)]
        assert c.execute("SELECT created_by FROM migrate.vectorizer").fetchone()[0] == bob
        assert c.execute("SELECT applied_by FROM migrate.revision").fetchone()[0] == bob
        c.execute("INSERT INTO blog (id, content) VALUES (9, 'x')")
        assert queued(c) == [1, 2, 3, 9]
        c.execute("SELECT migrate.drop_vectorizer(%s, true)", (vid,))
        assert count(c, "migrate.vectorizer") == 0
        # And again by name.
        create_vectorizer(c, BLOG_CONFIG)
        c.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
        assert trigger_count(c) == 0
        ops = c.execute("SELECT operation, applied_by FROM migrate.revision ORDER BY id").fetchall()
        assert ops == [("create", bob), ("drop", bob), ("create", bob), ("drop", bob)]


def test_member_of_owning_role_can_drop_what_the_owner_created(dbname, setup):
    alice, bob, _ = setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, BLOG_CONFIG)
    with connect(dbname) as admin:
        admin.execute(f'GRANT "{alice}" TO "{bob}"')
    with connect(dbname, user=bob) as c:
        c.execute("SELECT migrate.drop_vectorizer(1, true)")
        assert count(c, "migrate.vectorizer") == 0


def test_member_without_inherit_is_not_the_owner(dbname, setup):
    """PostgreSQL does not let a NOINHERIT member alter the table without SET
    ROLE; the extension agrees. After SET ROLE it works, as the owner."""
    alice, bob, _ = setup
    with connect(dbname) as admin:
        admin.execute(f'GRANT "{alice}" TO "{bob}" WITH INHERIT FALSE')
    with connect(dbname, user=bob) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("ALTER TABLE blog ADD COLUMN x int")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            create_vectorizer(c, BLOG_CONFIG)
        assert trigger_count(c) == 0
        c.execute(f'SET ROLE "{alice}"')
        create_vectorizer(c, BLOG_CONFIG)
        assert c.execute("SELECT created_by FROM migrate.vectorizer").fetchone()[0] == alice
        c.execute("RESET ROLE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT migrate.drop_vectorizer(1)")


# --- schema privileges ----------------------------------------------------------------


@pytest.mark.parametrize(
    "patch,path",
    [
        ({"destination": {"implementation": "table", "destination": "e", "view_schema": "locked"}}, "destination.view_schema"),
        ({"queue_schema": "locked"}, "queue_schema"),
        ({"destination": {"implementation": "table", "destination": "e", "target_schema": "locked", "view_schema": "locked"}}, "destination.target_schema"),
    ],
    ids=["view_schema", "queue_schema", "target_and_view_schema"],
)
def test_no_create_privilege_no_objects(dbname, setup, patch, path):
    """USAGE alone (what a reader has) is not enough to have the extension
    create a view or queue there."""
    alice, _, _ = setup
    with connect(dbname) as admin:
        admin.execute("CREATE SCHEMA locked")
        admin.execute(f'GRANT USAGE ON SCHEMA locked TO "{alice}"')
    with connect(dbname, user=alice) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            create_vectorizer(c, {**BLOG_CONFIG, **patch})
        assert e.value.diag.message_primary == f'{path}: permission denied to create objects in schema "locked"'
        assert count(c, "migrate.vectorizer") == 0
    with connect(dbname) as admin:
        assert admin.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'locked'::regnamespace").fetchone()[0] == 0
        assert trigger_count(admin) == 0


def test_create_privilege_granted_later_is_enough(dbname, setup):
    alice, _, _ = setup
    with connect(dbname) as admin:
        admin.execute("CREATE SCHEMA locked")
        admin.execute(f'GRANT USAGE, CREATE ON SCHEMA locked TO "{alice}"')
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, {**BLOG_CONFIG, "queue_schema": "locked", "destination": {"implementation": "table", "destination": "e", "view_schema": "locked", "target_schema": "locked"}})
        kinds = c.execute("SELECT kind, schema_name FROM migrate.managed_tables()").fetchall()
        assert kinds == [("store", "locked"), ("view", "locked"), ("queue", "locked"), ("failed_queue", "locked")]


@pytest.mark.parametrize("key", ["target_schema", "view_schema"])
def test_extension_schema_is_not_a_destination_for_non_superusers(dbname, setup, key):
    alice, _, _ = setup
    with connect(dbname, user=alice) as c:
        assert not c.execute("SELECT has_schema_privilege('migrate', 'CREATE')").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            create_vectorizer(c, {**BLOG_CONFIG, "destination": {"implementation": "table", "destination": "e", key: "migrate"}})
        assert count(c, "migrate.vectorizer") == 0


def test_default_queue_in_extension_schema_needs_no_create_there(dbname, setup):
    """The one intended exception: the queue lives in `migrate` by default
    and the caller needs no CREATE there."""
    alice, _, _ = setup
    with connect(dbname, user=alice) as c:
        assert not c.execute("SELECT has_schema_privilege('migrate', 'CREATE')").fetchone()[0]
        create_vectorizer(c, {**BLOG_CONFIG, "queue_schema": "migrate"})
        assert queued(c) == [1, 2, 3]


# --- escalation attempts ----------------------------------------------------------------


def test_crafted_source_cannot_reach_another_users_table(dbname, setup):
    """mallory names alice's table every way regclass accepts it (qualified,
    quoted, upper case, by OID, through search_path); each is 42501 and alice's
    table gets no trigger. A same-named table of her own is what she gets
    when her search_path finds it first."""
    alice, _, mallory = setup
    with connect(dbname) as admin:
        oid = admin.execute("SELECT 'public.blog'::regclass::oid").fetchone()[0]
        admin.execute(f'CREATE SCHEMA m AUTHORIZATION "{mallory}"')
    spellings = ["blog", "public.blog", '"public"."blog"', "PUBLIC.BLOG", " public . blog ", str(oid), f"{dbname}.public.blog"]
    with connect(dbname, user=mallory) as c:
        for source in spellings:
            with pytest.raises(psycopg.Error) as e:
                create_vectorizer(c, {**BLOG_CONFIG, "source": source})
            # A database-qualified name is refused before ownership is even looked at.
            assert e.value.sqlstate in ("42501", "22023"), (source, e.value.sqlstate, e.value.diag.message_primary)
        c.execute("CREATE TABLE m.blog (id int PRIMARY KEY, title text, content text)")
        c.execute("SET search_path = m, public")
        create_vectorizer(c, BLOG_CONFIG)
        assert c.execute("SELECT source::text FROM migrate.vectorizer").fetchone()[0] == "blog"
        assert c.execute("SELECT source = 'm.blog'::regclass FROM migrate.vectorizer").fetchone()[0]
    with connect(dbname) as admin:
        assert trigger_count(admin, "public.blog") == 0
        assert trigger_count(admin, "m.blog") == 4
        assert admin.execute("SELECT count(*) FROM migrate.revision").fetchone()[0] == 1


@pytest.mark.parametrize("source", ["migrate.vectorizer", "migrate.revision", "pg_catalog.pg_authid", "pg_catalog.pg_class"])
def test_extension_and_system_catalogs_are_not_sources_for_non_owners(dbname, setup, source):
    _, _, mallory = setup
    with connect(dbname, user=mallory) as c:
        config = {**BLOG_CONFIG, "source": source, "loading": {"implementation": "column", "column_name": "name"}, "formatting": "python_template"}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            create_vectorizer(c, config)
    with connect(dbname) as admin:
        assert trigger_count(admin, source) == 0
        assert admin.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0


@pytest.mark.parametrize(
    "patch,sqlstate",
    [
        ({"queue_schema": "public", "queue_table": "blog"}, "42P07"),
        ({"destination": {"implementation": "table", "target_table": "blog", "view_name": "mv"}}, "42P07"),
        ({"destination": {"implementation": "table", "target_table": "ms", "view_name": "blog"}}, "42P07"),
        ({"queue_schema": "pg_catalog", "queue_table": "q"}, "42501"),
        ({"destination": {"implementation": "table", "destination": "x", "target_schema": "pg_catalog"}}, "42501"),
        ({"destination": {"implementation": "table", "destination": "x", "view_schema": "information_schema"}}, "42501"),
    ],
    ids=["queue-over-blog", "store-over-blog", "view-over-blog", "queue-in-pg_catalog", "store-in-pg_catalog", "view-in-information_schema"],
)
def test_own_vectorizer_cannot_take_over_other_relations(dbname, setup, patch, sqlstate):
    """mallory's vectorizer on her own table cannot put its queue, store or
    view in place of alice's table, nor in system schemas."""
    _, _, mallory = setup
    with connect(dbname, user=mallory) as c:
        c.execute("CREATE TABLE mine (id int PRIMARY KEY, content text)")
        with pytest.raises(psycopg.Error) as e:
            create_vectorizer(c, {**own_config("mine", "mv1"), **patch})
        assert e.value.sqlstate == sqlstate, e.value.diag.message_primary
    with connect(dbname) as admin:
        assert admin.execute("SELECT relkind, pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.blog'::regclass").fetchone()[0] == "r"
        assert admin.execute("SELECT count(*) FROM blog").fetchone()[0] == 3
        assert admin.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0


def test_grant_to_cannot_hand_out_the_source_owners_data_to_non_listed_roles(dbname, setup):
    """grant_to gives exactly the listed roles access; PUBLIC and other roles
    get nothing."""
    alice, bob, mallory = setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, {**BLOG_CONFIG, "grant_to": [bob]})
    with connect(dbname, user=bob) as c:
        assert c.execute("SELECT count(*) FROM migrate._vectorizer_q_1").fetchone()[0] == 3
        assert c.execute("SELECT count(*) FROM blog_embeddings").fetchone()[0] == 0
    with connect(dbname, user=mallory) as c:
        for rel in ("blog", "blog_embeddings", "blog_embeddings_store", "migrate._vectorizer_q_1", "migrate._vectorizer_q_failed_1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"SELECT 1 FROM {rel} LIMIT 1")


def test_grant_to_cannot_give_schema_usage_the_caller_could_not_give(dbname, setup):
    """alice's schema `dropbox` lets mallory create but not look up objects
    (CREATE without USAGE). mallory's vectorizer with its store there and
    grant_to [mallory] must not end with mallory holding USAGE on dropbox."""
    alice, _, mallory = setup
    with connect(dbname) as admin:
        admin.execute(f'CREATE SCHEMA dropbox AUTHORIZATION "{alice}"')
    with connect(dbname, user=alice) as c:
        c.execute(f'GRANT CREATE ON SCHEMA dropbox TO "{mallory}"')
        c.execute("CREATE TABLE dropbox.secret (x text)")
    with connect(dbname, user=mallory) as c:
        c.execute("CREATE TABLE mine (id int PRIMARY KEY, content text)")
        assert not c.execute("SELECT has_schema_privilege('dropbox', 'USAGE')").fetchone()[0]
        # She cannot do it herself: PostgreSQL answers "no privileges were granted".
        try:
            c.execute(f'GRANT USAGE ON SCHEMA dropbox TO "{mallory}"')
        except psycopg.errors.InsufficientPrivilege:
            pass
        assert not c.execute("SELECT has_schema_privilege('dropbox', 'USAGE')").fetchone()[0]
        try:
            create_vectorizer(c, {**own_config("mine", "mv2"), "destination": {"implementation": "table", "destination": "m", "target_schema": "dropbox"}, "grant_to": [mallory]})
        except psycopg.errors.InsufficientPrivilege:
            pass  # refusing is a fine answer too
        assert not c.execute("SELECT has_schema_privilege('dropbox', 'USAGE')").fetchone()[0]


@pytest.mark.parametrize("which", ["store", "view", "queue"])
def test_drop_only_drops_the_vectorizers_own_relations(dbname, setup, which):
    """mallory cannot remove her vectorizer's relation by hand (the sql_drop
    event trigger refuses), so its name never passes to alice's table and
    mallory's drop_vectorizer can never reach a relation of alice's."""
    alice, _, mallory = setup
    with connect(dbname, user=mallory) as c:
        c.execute("CREATE TABLE mine (id int PRIMARY KEY, content text)")
        create_vectorizer(c, {**own_config("mine", "mv3"), "queue_schema": "public", "queue_table": "mq", "destination": {"implementation": "table", "destination": "shared"}})
        name = {"store": "shared_store", "view": "shared", "queue": "mq"}[which]
        with pytest.raises(psycopg.errors.DependentObjectsStillExist):
            if which == "queue":
                c.execute("DROP TABLE mq")
            elif which == "view":
                c.execute("DROP VIEW shared")
            else:
                c.execute("DROP TABLE shared_store CASCADE")
    with connect(dbname, user=alice) as c:
        with pytest.raises(psycopg.errors.DuplicateTable):
            c.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(name)))
    with connect(dbname, user=mallory) as c:
        c.execute("SELECT migrate.drop_vectorizer('mv3', drop_all => true)")
    with connect(dbname) as admin:
        assert admin.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone()[0] is None


def test_a_non_superuser_owner_alters_plans_and_restores(dbname, setup):
    """The normal case: the table's owner, with USAGE on migrate only."""
    alice, bob, _ = setup
    with connect(dbname, user=alice) as c:
        create_vectorizer(c, own_config("blog", "v"))
        c.execute("SELECT migrate.alter_vectorizer('v', '{\"processing\": {\"batch_size\": 5}}', label => 'a1')")
        c.execute("SELECT migrate.alter_vectorizer('v', %s::jsonb, reembed => true)",
                  ('{"embedding": {"dimensions": 4}, "grant_to": ["%s"], "destination": {"destination": "w_e"}}' % bob,))
        plan = c.execute("SELECT path, action FROM migrate.plan_vectorizer(%s::jsonb)",
                         (json.dumps(own_config("blog", "v", grant_to=[bob])),)).fetchall()
        assert ("embedding.dimensions", "reembed") in plan and ("destination.target_table", "in_place") in plan
        c.execute("SELECT migrate.drop_vectorizer('v', drop_all => true)")
        c.execute("SELECT migrate.restore_vectorizer('v')")
        owner = c.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'w_e_store'::regclass").fetchone()[0]
        assert owner == alice
        assert c.execute("SELECT operation, label FROM migrate.revision ORDER BY id").fetchall() == [
            ("create", None), ("alter", "a1"), ("alter", None), ("drop", None), ("create", None)]
        assert queued(c, "v") == [1, 2, 3]
    with connect(dbname, user=bob) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT migrate.alter_vectorizer('v', '{\"processing\": {\"batch_size\": 6}}')")

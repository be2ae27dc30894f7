"""Governance: the keyed ledger (key id per event), signed checkpoints, retired ledger keys;
on PostgreSQL, TRUNCATE refused and the ledger's tables handed to a role the app is not.

The role arrangement (PostgreSQL): a NOLOGIN role `plinth_ledger` owns `audit_events` and
`audit_checkpoints`; the migrating role (the app's) keeps SELECT and INSERT only. A role that
does not own a table cannot ALTER, DROP or TRUNCATE it nor disable its triggers, and the
triggers refuse UPDATE, DELETE and TRUNCATE to everyone else. Creating the role needs
SUPERUSER or CREATEROLE; without either the tables stay the app's (with a notice), and only the
triggers stand. The owner of the schema (or database) may still DROP the tables, so the app's
role should own neither (README: the arrangement). A superuser can still bypass triggers
(`session_replication_role`); the README says what `verify` then still catches.
"""

import sqlalchemy as sa
from alembic import op

revision = "0410_audit_keyed_chain"
down_revision = "0400_governance"
branch_labels = None
depends_on = None

LEDGER_TABLES = ("audit_events", "audit_checkpoints")

_PG_GUARD = """
CREATE OR REPLACE FUNCTION plinth_ledger_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql
"""

# Runs as whoever migrates. Every step is guarded: the migration must not fail for a role
# that may not create roles; it then leaves the tables as they were (triggers still stand).
_PG_ROLES = """
DO $$
DECLARE
  me text := current_user;
  super boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
  creator boolean := (SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user);
  granted boolean := false;
  schema_granted boolean := false;
  here text := quote_ident(current_schema());
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plinth_ledger') THEN
    IF NOT (super OR creator) THEN
      RAISE NOTICE 'plinth: role plinth_ledger does not exist and % may not create it; '
        'the audit tables stay owned by %', me, me;
      RETURN;
    END IF;
    BEGIN
      CREATE ROLE plinth_ledger NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;  -- created meanwhile by another database's migration (roles are per cluster)
    END;
  END IF;
  IF NOT super THEN
    IF pg_has_role(me, 'plinth_ledger', 'MEMBER') THEN
      RAISE WARNING 'plinth: % is a member of plinth_ledger, so it can still take the audit '
        'tables back (SET ROLE plinth_ledger); revoke that membership', me;
    ELSIF creator THEN
      EXECUTE format('GRANT plinth_ledger TO %I', me);
      granted := true;
    ELSE
      RAISE NOTICE 'plinth: % may not hand the audit tables to plinth_ledger', me;
      RETURN;
    END IF;
    -- The new owner needs CREATE on the schema; only the schema's owner may grant it.
    IF NOT has_schema_privilege('plinth_ledger', current_schema(), 'CREATE') THEN
      BEGIN
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %s TO plinth_ledger', here);
        schema_granted := true;
      EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'plinth: plinth_ledger needs CREATE on schema %; the audit tables '
          'stay owned by %', here, me;
        IF granted THEN
          EXECUTE format('REVOKE plinth_ledger FROM %I', me);
        END IF;
        RETURN;
      END;
    END IF;
  END IF;
  ALTER TABLE audit_events OWNER TO plinth_ledger;
  ALTER TABLE audit_checkpoints OWNER TO plinth_ledger;
  IF schema_granted THEN
    EXECUTE format('REVOKE CREATE ON SCHEMA %s FROM plinth_ledger', here);
  END IF;
  REVOKE ALL ON audit_events, audit_checkpoints FROM PUBLIC;
  EXECUTE format('REVOKE ALL ON audit_events, audit_checkpoints FROM %I', me);
  EXECUTE format('GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO %I', me);
  EXECUTE format('GRANT USAGE ON SEQUENCE %s, %s TO %I',
    pg_get_serial_sequence('audit_events', 'seq'),
    pg_get_serial_sequence('audit_checkpoints', 'seq'), me);
  IF granted THEN
    EXECUTE format('REVOKE plinth_ledger FROM %I', me);
  END IF;
END $$
"""


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("key_id", sa.String(16), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant_key", sa.String(32), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.UniqueConstraint("tenant_key", "n", name="uq_audit_checkpoints_tenant_key_n"),
    )
    op.create_table(
        "audit_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
        op.execute("""CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE
                      ON audit_checkpoints FOR EACH ROW
                      EXECUTE FUNCTION plinth_ledger_append_only()""")
        for table in LEDGER_TABLES:
            op.execute(f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                           FOR EACH STATEMENT EXECUTE FUNCTION plinth_ledger_append_only()""")
        op.execute(_PG_ROLES)
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER audit_checkpoints_no_{verb.lower()} BEFORE {verb}
                           ON audit_checkpoints BEGIN
                           SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END""")


def downgrade() -> None:
    op.drop_table("audit_keys")
    op.drop_table("audit_checkpoints")
    op.drop_column("audit_events", "key_id")

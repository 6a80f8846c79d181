/* Unit tests for capture.c: quoting, qualified names, template columns, generated SQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/capture.h"
#include "pg2qdrant/errors.h"

static char *ident(const char *s) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_sql_ident(&b, s);
  return p2q_buf_steal(&b);
}

static char *literal(const char *s) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_sql_literal(&b, s);
  return p2q_buf_steal(&b);
}

static void test_quoting(void **state) {
  char *s;
  s = ident("id"); assert_string_equal(s, "\"id\""); free(s);
  s = ident("id\"; DROP TABLE x; --"); assert_string_equal(s, "\"id\"\"; DROP TABLE x; --\""); free(s);
  s = literal("it's"); assert_string_equal(s, "'it''s'"); free(s);
  s = literal("a\\b'"); assert_string_equal(s, "E'a\\\\b'''"); free(s);
}

static void test_qualified(void **state) {
  char *sc, *n;
  assert_int_equal(p2q_sql_parse_qualified("public.docs", &sc, &n), 0);
  assert_string_equal(sc, "public"); assert_string_equal(n, "docs"); free(sc); free(n);
  assert_int_equal(p2q_sql_parse_qualified("Docs", &sc, &n), 0);
  assert_string_equal(sc, "public"); assert_string_equal(n, "docs"); free(sc); free(n);
  assert_int_equal(p2q_sql_parse_qualified("\"My \"\"S\"\"\".\"T.x\"", &sc, &n), 0);
  assert_string_equal(sc, "My \"S\""); assert_string_equal(n, "T.x"); free(sc); free(n);
  assert_int_equal(p2q_sql_parse_qualified("a.b.c", &sc, &n), P2Q_EINVAL);
  assert_int_equal(p2q_sql_parse_qualified("docs; DROP TABLE x", &sc, &n), P2Q_EINVAL);
  assert_int_equal(p2q_sql_parse_qualified("\"unterminated", &sc, &n), P2Q_EINVAL);
  assert_int_equal(p2q_sql_parse_qualified("", &sc, &n), P2Q_EINVAL);
}

static void test_template_columns(void **state) {
  p2q_strlist_t l;
  assert_int_equal(p2q_template_columns("{title}\n{body} {title}", &l), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.items[0], "title");
  assert_string_equal(l.items[1], "body");
  p2q_strlist_free(&l);
  assert_int_equal(p2q_template_columns("title, body", &l), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.items[1], "body");
  p2q_strlist_free(&l);
  assert_int_equal(p2q_template_columns("{unclosed", &l), P2Q_EINVAL);
  assert_int_equal(p2q_template_columns("{}", &l), P2Q_EINVAL);
}

static char *key_items[] = {"id"};
static char *col_items[] = {"title", "body\"x"};

static p2q_rule_config_t rule(void) {
  p2q_rule_config_t r;
  memset(&r, 0, sizeof r);
  strcpy(r.name, "docs");
  r.table = "public.docs";
  r.key.items = key_items; r.key.n = 1;
  r.columns.items = col_items; r.columns.n = 2;
  r.vector_column = "embedding";
  r.collection = "docs";
  r.filter = "published_at IS NOT NULL";
  return r;
}

static void test_install_sql(void **state) {
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  const char *s = p2q_buf_str(&b);
  assert_non_null(strstr(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_capture_docs\"()"));
  assert_non_null(strstr(s, "AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"docs\""));
  /* the TRUNCATE trigger goes on the table, or on each leaf partition (a partition's TRUNCATE
     fires no trigger of its parent), and reads the relation it fires on */
  assert_non_null(strstr(s, "UNION ALL SELECT p2q_p.relid FROM pg_catalog.pg_partition_tree("
                            "pg_catalog.to_regclass('\"public\".\"docs\"')) AS p2q_p"));
  assert_non_null(strstr(s, "EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT "
                            "EXECUTE FUNCTION %s()', 'p2q_docs_truncate', rel, '\"public\".\"p2q_truncate_docs\"');"));
  assert_non_null(strstr(s, " FROM ' || TG_RELID::regclass::text || ' AS r CROSS JOIN LATERAL ("));
  /* the column with a quote is quoted, its key literal escaped */
  assert_non_null(strstr(s, "'body\"x', NEW.\"body\"\"x\""));
  /* vector column joins the snapshot; max_attempts is carried */
  assert_non_null(strstr(s, "'embedding', NEW.\"embedding\""));
  assert_non_null(strstr(s, "THEN 7 ELSE 0 END"));
  /* fast path in an exception block; the slow path reads the columns by name from the row's json */
  assert_non_null(strstr(s, "EXCEPTION WHEN OTHERS THEN\n    slow := true;"));
  assert_non_null(strstr(s, "FROM json_each(row_to_json(NEW)) AS e"));
  assert_non_null(strstr(s, "FROM json_each(row_to_json(OLD)) AS e"));
  /* no column is read by reference outside the fast block */
  const char *slow = strstr(s, "  IF slow THEN");
  assert_non_null(slow);
  const char *end = strstr(slow, "RETURN NULL;\nEND");
  /* ... except the key, salvaged in a block of its own when the row's json cannot be built */
  const char *salv = strstr(slow, "EXCEPTION WHEN OTHERS THEN\n      bad_f := COALESCE(bad_f, 'rule docs: the row cannot be captured: ' || SQLERRM);");
  assert_non_null(salv);
  const char *salv_end = strstr(salv, "EXCEPTION WHEN OTHERS THEN\n        NULL;\n      END;\n    END;");
  assert_non_null(salv_end);
  for (const char *p = slow; (p = strstr(p, "NEW.\"")) && p < end; p++) {
    if (p > salv && p < salv_end) continue;
    /* only the filter's row expression may (and sits in its own exception block) */
    fail_msg("column by reference in the slow path: %.40s", p);
  }
  /* the change test compares text, short-circuiting per watched column, after a binary check */
  assert_non_null(strstr(s, "(NOT (ROW(NEW.\"title\")::record *= ROW(OLD.\"title\")::record) AND"
                            " NEW.\"title\"::text IS DISTINCT FROM OLD.\"title\"::text) OR"));
  /* an INSERT's fast path reads NEW only, inside the fast block */
  const char *ins = strstr(s, "  BEGIN\n    IF TG_OP = 'INSERT' THEN\n");
  assert_non_null(ins);
  const char *ins_end = strstr(ins, "\n    ELSE\n");
  assert_non_null(ins_end);
  assert_true(ins_end < slow);
  for (const char *p = ins; (p = strstr(p, "OLD.")) && p < ins_end; p++) fail_msg("OLD in the INSERT path: %.40s", p);
  assert_non_null(strstr(ins, "sn := json_build_object('title', NEW.\"title\""));
  /* an UPDATE leaves at once when the watched and key columns kept their binary image and the
     filter (which may read other columns) says the same on both sides */
  const char *leave = strstr(ins_end, "      IF TG_OP = 'UPDATE' AND ROW(NEW.\"title\", NEW.\"body\"\"x\", NEW.\"embedding\", "
                                      "NEW.\"id\")::record *= ROW(OLD.\"title\", OLD.\"body\"\"x\", OLD.\"embedding\", "
                                      "OLD.\"id\")::record AND COALESCE((SELECT (published_at IS NOT NULL)::boolean FROM "
                                      "(SELECT NEW.*) AS r), false) = COALESCE((SELECT (published_at IS NOT NULL)::boolean "
                                      "FROM (SELECT OLD.*) AS r), false) THEN\n        RETURN NULL;\n      END IF;\n");
  assert_non_null(leave);
  assert_true(leave < slow);
  /* the vector's change test: a real[] (sent unprinted) by its binary image alone; another type
     prints NEW's as json once, and the snapshot reuses that text */
  const char *jv = strstr(leave, "        IF pg_typeof(NEW.\"embedding\") = 'real[]'::regtype THEN\n"
                                 "          changed := true;\n        ELSE\n"
                                 "          jv := to_json(NEW.\"embedding\");\n"
                                 "          changed := jv::text IS DISTINCT FROM to_json(OLD.\"embedding\")::text;\n");
  assert_non_null(jv);
  const char *bin = strstr(jv, "          vb := NEW.\"embedding\";\n          sn := json_build_object('title', NEW.\"title\", "
                               "'body\"x', NEW.\"body\"\"x\", 'embedding', NULL::json);\n        ELSE\n");
  assert_non_null(bin);
  assert_non_null(strstr(bin, "'embedding', COALESCE(jv, to_json(NEW.\"embedding\")))"));
  assert_true(jv < slow && bin < slow);
  /* the INSERT path sends a real[] unprinted too; upserts carry vb, deletes do not */
  assert_non_null(strstr(ins, "        vb := NEW.\"embedding\";\n"));
  assert_non_null(strstr(slow, "'upsert', sn, vb, CASE WHEN bad_new IS NULL"));
  assert_non_null(strstr(slow, "'delete', NULL, CASE WHEN bad_old IS NULL"));
  /* a missing vector column makes upserts born dead, with the reason */
  assert_non_null(strstr(s, "rule docs: its vector column (embedding) is no longer in public.docs"));
  assert_non_null(strstr(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_drift_docs\"()"));
  assert_non_null(strstr(s, "('embedding', 'vector_column', true)"));
  assert_non_null(strstr(s, "('title', 'columns', false)"));
  assert_non_null(strstr(s, "(SELECT (published_at IS NOT NULL)::boolean FROM (SELECT NEW.*) AS r)"));
  /* the settings that change text output are pinned on both functions (session.h) */
  const char *pins = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'"
                     " SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'iso_8601'"
                     " SET extra_float_digits = '3' SET bytea_output = 'hex' SET lc_monetary = 'C' AS $p2q$";
  const char *f1 = strstr(s, pins);
  assert_non_null(f1);
  assert_non_null(strstr(f1 + 1, pins)); /* the truncate function too */
  p2q_buf_free(&b);

  r.on_truncate = P2Q_TRUNCATE_IGNORE;
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  assert_null(strstr(p2q_buf_str(&b), "BEFORE TRUNCATE"));
  /* on_truncate = ignore: the function goes, with its triggers on every partition */
  assert_non_null(strstr(p2q_buf_str(&b), "DROP FUNCTION IF EXISTS \"public\".\"p2q_truncate_docs\"() CASCADE;"));
  p2q_buf_free(&b);
}

static void test_long_rule_name_refused(void **state) {
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  memset(r.name, 'x', 41);
  r.name[41] = 0; /* "p2q_x…x_truncate" would exceed 63 bytes */
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), P2Q_EINVAL);
  r.name[40] = 0;
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  p2q_buf_free(&b);
}

/* A body holding the tag (a schema or filter with $p2q$) gets the next tag of the one sequence
   admin.c uses too; it never ends the quote early (issue 16: apply for a schema "we$p2q$ird"). */
static void test_dollar_quote_chosen(void **state) {
  static const char *const cases[][2] = {
      {"x", "$p2q$x$p2q$"},
      {"a $p2q$ b", "$p2q_1$a $p2q$ b$p2q_1$"},
      {"p2q$", "$p2q_1$p2q$$p2q_1$"},        /* $p2q$ + p2q$ would hold $p2q$ a third time */
      {"$p2q", "$p2q_1$$p2q$p2q_1$"},        /* "$p2q"+"$p2q$": the tag's overlap at the start */
      {"$p2q$ $p2q_1$", "$p2q_2$$p2q$ $p2q_1$$p2q_2$"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    p2q_buf_t b = P2Q_BUF_INIT;
    assert_int_equal(p2q_sql_dollar_quote(&b, cases[i][0]), 0);
    assert_string_equal(p2q_buf_str(&b), cases[i][1]);
    p2q_buf_free(&b);
  }
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  r.filter = "true $p2q$; DROP TABLE x; $p2q$";
  assert_int_equal(p2q_capture_install_sql(&r, "we$p2q$ird", 7, &b), 0);
  const char *s = p2q_buf_str(&b), *q = strstr(s, " AS $p2q_1$");
  assert_non_null(q); /* the trigger function's body, quoted with the next tag */
  const char *end = strstr(q + 11, "$p2q_1$");
  assert_non_null(end);
  assert_true(strstr(q, "DROP TABLE x") < end); /* the filter stays inside the quote */
  p2q_buf_free(&b);
  assert_int_equal(p2q_capture_guard_sql("we$p2q$ird", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), " AS $p2q_1$"));
  p2q_buf_free(&b);
}

/* text's first occurrence in from (failing the test when there is none) */
static const char *after(const char *from, const char *text) {
  const char *p = strstr(from, text);
  if (!p) fail_msg("not found: %.60s", text);
  return p;
}

/* A rule without filter and routing key: its statement functions are installed pinned, then
   replaced without the output pins when the table's columns have setting-free types (a DO block
   counting them in pg_attribute); the unpinned ones test the types per statement and hand rows
   of any other type to the pinned row function. With a filter or routing key: pinned only. */
static void test_unpinned_statement_sql(void **state) {
  p2q_rule_config_t r = rule();
  r.filter = NULL;
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  const char *s = p2q_buf_str(&b);
  const char *pinned = after(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_insert_docs\"() RETURNS trigger\n"
                                "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'");
  /* when the script runs: the columns' types in pg_attribute, all setting-free, make the guard */
  const char *choice = after(pinned, "DO $p2q_2$\nDECLARE\n  g text;\nBEGIN\n  SELECT pg_catalog.string_agg(pg_catalog.format("
                                     "'pg_catalog.pg_typeof(NEW.%I)::pg_catalog.oid OPERATOR(pg_catalog.=) %s::pg_catalog.oid', a.attname,"
                                     " a.atttypid), ' AND ' ORDER BY a.attnum) INTO g\n"
                                     "    FROM pg_catalog.pg_attribute a WHERE a.attrelid = '\"public\".\"docs\"'::pg_catalog.regclass"
                                     " AND a.attnum > 0 AND NOT a.attisdropped AND ((a.attname = 'id' AND a.atttypid = ANY ('{boolean,");
  const char *vec = after(choice, " OR (a.attname = 'embedding' AND a.atttypid = 'real[]'::regtype))\n"
                                  "    HAVING pg_catalog.count(*) = 4;\n  IF g IS NOT NULL THEN\n"
                                  "    EXECUTE pg_catalog.replace(pg_catalog.replace($p2q_1$CREATE OR REPLACE FUNCTION \"public\".\"p2q_insert_docs\"() RETURNS trigger\n"
                                  "LANGUAGE plpgsql SECURITY DEFINER AS $p2q$\nDECLARE\n  old_ok pg_catalog.bool := false;\n");
  const char *tz = strstr(choice, "timestamp with time zone"), *fl = strstr(choice, "double precision");
  assert_true((tz == NULL || tz > vec) && (fl == NULL || fl > vec)); /* no setting-dependent type */
  /* the guard spliced in twice: the one-row path, the set path */
  /* no search_path pinned: every function, operator and type named in pg_catalog */
  /* the first statement: the table's oid (capture_relid.c), the mark replaced when the script runs */
  const char *relid = after(vec, "  p2q_n pg_catalog.int8 := 0;\nBEGIN\n  IF NOT (TG_RELID OPERATOR(pg_catalog.=) '\x02'::pg_catalog.oid"
                                 " AND TG_TABLE_NAME OPERATOR(pg_catalog.=) 'docs'::pg_catalog.name AND TG_TABLE_SCHEMA"
                                 " OPERATOR(pg_catalog.=) 'public'::pg_catalog.name\x03) THEN"); /* \x03: the partitions' test */
  /* refused: the statement's rows (its own transition table) to sync_outbox_dead, a WARNING */
  after(relid, "\"public\".sync_outbox_capture_accepts(TG_RELID, TG_NAME, '\x02'::pg_catalog.oid, 'public'::pg_catalog.name,"
               " 'docs'::pg_catalog.name, 'insert'::pg_catalog.text);\n"); /* typed: rv15b L1 */
  after(relid, "pg_catalog.jsonb_build_object('id', CASE WHEN pg_catalog.pg_typeof(p2q_r.\"id\")::pg_catalog.oid"
               " OPERATOR(pg_catalog.<) 16384 THEN pg_catalog.to_jsonb(p2q_r.\"id\") ELSE"
               " pg_catalog.to_jsonb(pg_catalog.format('%s', p2q_r.\"id\")) END), 'upsert', NULL, 0, 7, p2q_why,"
               " pg_catalog.now() FROM p2q_new AS p2q_r;\n");
  after(relid, "  FOR NEW IN SELECT * FROM p2q_new LOOP\n    p2q_n := p2q_n OPERATOR(pg_catalog.+) 1;\n"
             "    EXIT WHEN p2q_n OPERATOR(pg_catalog.>) 1;\n");
  const char *one = after(vec, "  IF p2q_n OPERATOR(pg_catalog.=) 1 THEN -- NEW holds the statement's one row\n  BEGIN\n"
                               "    IF $p2q_1$ || g || $p2q$ THEN\n      kn := pg_catalog.jsonb_build_object('id', NEW.\"id\");\n");
  const char *hand = after(one, "    ELSE\n      slow := true;\n    END IF;\n  EXCEPTION WHEN OTHERS THEN\n    slow := true;\n"
                                "  END;\n  IF slow THEN\n    probe := \"public\".\"p2q_pinned_docs\"('INSERT', NEW, NULL);\n"
                                "    RETURN NULL;\n  END IF;\n");
  after(hand, "COALESCE(kn, '{}'::pg_catalog.jsonb), 'upsert', sn, vb, ");
  const char *set = after(hand, "    BEGIN\n      IF $p2q$ || g || $p2q_1$ AND NOT EXISTS (SELECT FROM p2q_new AS r"
                                " WHERE 0 OPERATOR(pg_catalog.+) COALESCE(pg_catalog.pg_column_size(r.\"id\"), 0)");
  after(set, "SELECT 'docs', NULL, 'docs', 'public.docs', pg_catalog.jsonb_build_object('id', r.\"id\"), 'upsert',"
             " pg_catalog.json_build_object('title', r.\"title\", ");
  after(set, "      GET DIAGNOSTICS p2q_n = ROW_COUNT;\n      IF p2q_n OPERATOR(pg_catalog.>) 0 THEN\n");
  const char *rest = after(set, "  FOR NEW IN SELECT * FROM p2q_new LOOP\n    probe := \"public\".\"p2q_pinned_docs\"('INSERT',"
                                " NEW, NULL);\n  END LOOP;\n  RETURN NULL;\nEND\n$p2q$;\n$p2q_1$, pg_catalog.chr(2),"
                                " '\"public\".\"docs\"'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text), pg_catalog.chr(3),"
                                " (SELECT CASE WHEN pg_catalog.strpos(p2q_p.t, pg_catalog.chr(36)) OPERATOR(pg_catalog.=) 0 THEN"
                                " p2q_p.t END FROM (SELECT CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 THEN '' ELSE pg_catalog.format(");
  after(rest, " FROM pg_catalog.pg_partition_tree('\"public\".\"docs\"'::pg_catalog.regclass) p2q_pt JOIN pg_catalog.pg_class c"
              " ON c.oid OPERATOR(pg_catalog.=) p2q_pt.relid JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=)"
              " c.relnamespace WHERE p2q_pt.relid OPERATOR(pg_catalog.<>) '\"public\".\"docs\"'::pg_catalog.regclass"
              " AND c.relname OPERATOR(pg_catalog.!~) '[^a-z0-9_]' AND n.nspname OPERATOR(pg_catalog.!~) '[^a-z0-9_]') p2q_p));\n" /* rv15b H1: names in [a-z0-9_] only, no $ */
              "  END IF;\nEND\n$p2q_2$;\n");
  const char *slow = strstr(one, "json_each(row_to_json(NEW))"); /* no slow path by name: it is the pinned function's */
  assert_true(slow == NULL || slow > rest);
  /* the DELETE function: the key's types only, over OLD */
  const char *del = after(rest, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_delete_docs\"() RETURNS trigger\n");
  const char *dchoice = after(del, "'pg_catalog.pg_typeof(OLD.%I)::pg_catalog.oid OPERATOR(pg_catalog.=) %s::pg_catalog.oid'");
  after(dchoice, "    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN\n");
  after(dchoice, "AND ((a.attname = 'id' AND a.atttypid = ANY ('{boolean,");
  after(dchoice, "::regtype[]::oid[])))\n    HAVING pg_catalog.count(*) = 1;\n");
  after(dchoice, "    probe := \"public\".\"p2q_pinned_docs\"('DELETE', NULL, OLD);\n");
  /* a routing key (or a filter: test_insert_statement_sql) keeps the pinned functions only */
  r.routing_key = "'a'";
  p2q_buf_reset(&b);
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  assert_null(strstr(p2q_buf_str(&b), "pg_catalog.pg_attribute a WHERE a.attrelid"));
  assert_null(strstr(p2q_buf_str(&b), "p2q_pinned_docs\"('INSERT'"));
  /* more snapshot columns than one json_build_object takes: the INSERT function keeps its pins */
  static char *many[41];
  static char names[41][8];
  for (int i = 0; i < 41; i++) { snprintf(names[i], sizeof names[i], "c%d", i); many[i] = names[i]; }
  r.routing_key = NULL;
  r.columns.items = many;
  r.columns.n = 41;
  p2q_buf_reset(&b);
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  assert_null(strstr(p2q_buf_str(&b), "p2q_pinned_docs\"('INSERT'"));
  assert_non_null(strstr(p2q_buf_str(&b), "p2q_pinned_docs\"('DELETE'")); /* the key alone: unpinned */
  p2q_buf_free(&b);
  (void)state;
}

/* The statement-level INSERT and DELETE capture (capture_stmt.c) and apply's choice between it
   and the row trigger (capture.c). */
static void test_insert_statement_sql(void **state) {
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  const char *s = p2q_buf_str(&b);
  const char *fn = after(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_insert_docs\"() RETURNS trigger\n"
                             "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'");
  /* one row: the row trigger's INSERT path over the transition table's row */
  const char *one = after(fn, "  FOR NEW IN SELECT * FROM p2q_new LOOP\n    p2q_n := p2q_n + 1;\n    EXIT WHEN p2q_n > 1;\n");
  assert_non_null(strstr(one, "(SELECT (published_at IS NOT NULL)::boolean FROM p2q_new AS r)"));
  /* more: what can fail checked in a read-only block first, the INSERT outside it, one NOTIFY; once
     per statement the vector's and the columns' types: a real[] vector and json-safe columns, then
     per row only the filter (and routing key), else every expression */
  const char *guard = after(one, "    BEGIN\n      IF pg_typeof(NEW.\"embedding\") <> 'real[]'::regtype THEN\n"
                                  "        p2q_n := -1;\n      ELSIF pg_typeof(NEW.\"id\") = ANY ('{boolean,");
  /* ... and every row's columns small enough for json (their stored sizes summed; not the vector,
     sent unprinted) */
  const char *sizes = after(guard, "}'::regtype[]) AND NOT EXISTS (SELECT FROM p2q_new AS r WHERE 0"
                                    " + COALESCE(pg_column_size(r.\"id\"), 0) + ");
  const char *safe = after(sizes, " > 262144) THEN\n        SELECT count(p2q_v) INTO p2q_n FROM (SELECT NULL FROM p2q_new AS r"
                                   " WHERE COALESCE((published_at IS NOT NULL)::boolean, false) IS NOT NULL) AS p2q_v;\n"
                                   "      ELSE\n");
  const char *emb = strstr(sizes, "pg_column_size(r.\"embedding\")");
  assert_true(emb == NULL || emb > safe);
  assert_non_null(strstr(guard, "pg_typeof(NEW.\"embedding\") = ANY ("));
  const char *val = after(safe, "      ELSE\n        SELECT count(p2q_v) INTO p2q_n FROM (SELECT 'docs', NULL, 'docs', 'public.docs', ");
  const char *val_end = after(val, " FROM p2q_new AS r WHERE COALESCE((published_at IS NOT NULL)::boolean, false) IS NOT NULL)"
                                    " AS p2q_v;\n      END IF;\n    EXCEPTION WHEN OTHERS THEN\n      p2q_n := -1;\n    END;\n");
  const char *ins = after(val_end, "    IF p2q_n >= 0 THEN\n      INSERT INTO \"public\".sync_outbox (event_type, routing_key, rule,"
                                    " source_table, row_key, op, payload, vec, max_attempts, last_error) SELECT 'docs', ");
  const char *ins_end = after(ins, " FROM p2q_new AS r WHERE COALESCE((published_at IS NOT NULL)::boolean, false);\n"
                                    "      GET DIAGNOSTICS p2q_n = ROW_COUNT;\n      IF p2q_n > 0 THEN\n        probe := "
                                    "pg_catalog.pg_notify('sync_outbox_insert', 'docs') IS NULL;");
  for (const char *p = val; (p = strstr(p, "pg_notify")) && p < ins_end; p++) fail_msg("a NOTIFY per event: %.40s", p);
  /* the fallback: each row through the row path, its filter over the row typed through its json */
  const char *loop = after(ins_end, "  FOR NEW IN SELECT * FROM p2q_new LOOP\nDECLARE\n");
  assert_non_null(strstr(loop, "(SELECT (published_at IS NOT NULL)::boolean FROM json_populate_record("
                               "NULL::\"public\".\"docs\", row_to_json(NEW)) AS r)"));
  /* DELETEs: the same shape over OLD and p2q_old, delete events (no payload, no vector) */
  const char *del = after(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_delete_docs\"() RETURNS trigger\n");
  assert_non_null(strstr(del, "  FOR OLD IN SELECT * FROM p2q_old LOOP\n    p2q_n := p2q_n + 1;\n    EXIT WHEN p2q_n > 1;\n"));
  assert_non_null(strstr(del, "    BEGIN\n      IF pg_typeof(OLD.\"id\") = ANY ('{boolean,")); /* the key only: no vector */
  assert_non_null(strstr(del, "INSERT INTO \"public\".sync_outbox (event_type, routing_key, rule, source_table, row_key,"
                              " op, payload, max_attempts, last_error) SELECT 'docs', NULL, 'docs', 'public.docs',"
                              " jsonb_build_object('id', r.\"id\"), 'delete', NULL, "));
  assert_non_null(strstr(del, "(SELECT (published_at IS NOT NULL)::boolean FROM json_populate_record("
                              "NULL::\"public\".\"docs\", row_to_json(OLD)) AS r)"));
  /* the choice, when the script runs: the statement triggers, or the row trigger for all three */
  const char *choice = after(s, "DROP TRIGGER IF EXISTS \"p2q_docs\" ON \"public\".\"docs\";\n"
                                 "DROP TRIGGER IF EXISTS \"p2q_docs_insert\" ON \"public\".\"docs\";\n"
                                 "DROP TRIGGER IF EXISTS \"p2q_docs_delete\" ON \"public\".\"docs\";\nDO $p2q$\n"
                                 "BEGIN\n  IF (SELECT c.relkind = 'r' AND NOT c.relispartition FROM pg_catalog.pg_class c"
                                 " WHERE c.oid = '\"public\".\"docs\"'::regclass)\n");
  assert_non_null(strstr(choice, "(g.tgtype & 12) <> 0 AND (g.tgtype & 66) = 0"));
  assert_non_null(strstr(choice, "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel sr WHERE sr.srrelid = "
                                 "'\"public\".\"docs\"'::regclass)"));
  assert_non_null(strstr(choice, "pg_catalog.current_setting('temp_file_limit') = '-1' AND NOT EXISTS (SELECT 1"
                                 " FROM pg_catalog.pg_db_role_setting s"));
  assert_non_null(strstr(choice, "    CREATE TRIGGER \"p2q_docs\" AFTER UPDATE ON \"public\".\"docs\" FOR EACH ROW"));
  assert_non_null(strstr(choice, "    CREATE TRIGGER \"p2q_docs_insert\" AFTER INSERT ON \"public\".\"docs\" REFERENCING NEW"
                                 " TABLE AS p2q_new FOR EACH STATEMENT EXECUTE FUNCTION \"public\".\"p2q_insert_docs\"();\n"
                                 "    CREATE TRIGGER \"p2q_docs_delete\" AFTER DELETE ON \"public\".\"docs\" REFERENCING OLD"
                                 " TABLE AS p2q_old FOR EACH STATEMENT EXECUTE FUNCTION \"public\".\"p2q_delete_docs\"();\n"
                                 "  ELSE\n    CREATE TRIGGER \"p2q_docs\" AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"docs\""));
  /* TRUNCATE: filtered, every row by name, every row without the routing key */
  assert_non_null(strstr(s, "    EXCEPTION WHEN OTHERS THEN\n      EXECUTE 'INSERT INTO \"public\".sync_outbox (event_type,"
                            " routing_key, rule, source_table, row_key, op, payload, max_attempts, last_error) SELECT CASE"
                            " WHEN pg_catalog.pg_notify(''sync_outbox_insert'', ''docs'') IS NULL THEN NULL ELSE ''docs'' END,"
                            " NULL, "));
  /* drift: the statement trigger gone, a trigger or setting that no longer fits */
  assert_non_null(strstr(s, "RETURN QUERY SELECT m.n, 'trigger'::text, true FROM (VALUES ('p2q_docs_insert'),"
                            " ('p2q_docs_delete')) AS m(n)"));
  assert_non_null(strstr(s, "'after write trigger'::text, false"));
  assert_non_null(strstr(s, "'temp_file_limit'::text, 'setting'::text, false"));
  assert_non_null(strstr(s, "'partition'::text, true"));
  assert_non_null(strstr(s, "'subscription'::text, false"));
  p2q_buf_free(&b);
  assert_int_equal(p2q_capture_installed_sql(&r, "public", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "p.tgname = 'p2q_docs' AND ((p.tgtype & 4) <> 0 OR EXISTS ("));
  p2q_buf_free(&b);
  assert_int_equal(p2q_capture_drop_sql("docs", "public.docs", "out", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "DROP TRIGGER IF EXISTS \"p2q_docs_insert\" ON \"public\".\"docs\";"));
  assert_non_null(strstr(p2q_buf_str(&b), "DROP FUNCTION IF EXISTS \"out\".\"p2q_insert_docs\"();"));
  assert_non_null(strstr(p2q_buf_str(&b), "DROP TRIGGER IF EXISTS \"p2q_docs_delete\" ON \"public\".\"docs\";"));
  assert_non_null(strstr(p2q_buf_str(&b), "DROP FUNCTION IF EXISTS \"out\".\"p2q_delete_docs\"();"));
  p2q_buf_free(&b);
}

/* A rule without a filter: the unpinned gate in front of the pinned function (capture_body.c
   p2q_capture_gate_body); with a filter the single pinned function, and the pinned one dropped. */
static void test_gate_sql(void **state) {
  p2q_rule_config_t r = rule();
  r.filter = NULL;
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  const char *s = p2q_buf_str(&b);
  const char *pinned = strstr(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_pinned_docs\"(tg_op text, new record, old record)"
                                 " RETURNS boolean\nLANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'");
  assert_non_null(pinned);
  const char *gate = strstr(s, "CREATE OR REPLACE FUNCTION \"public\".\"p2q_capture_docs\"() RETURNS trigger\n"
                               "LANGUAGE plpgsql SECURITY DEFINER AS $p2q$\n"
                               "-- the events and their wake-up (NOTIFY sync_outbox_insert) are written by the pinned function\n"
                               "DECLARE\n  probe pg_catalog.bool;\nBEGIN\n"
                               "  IF NOT (TG_RELID OPERATOR(pg_catalog.=) '\x02'::pg_catalog.oid AND TG_TABLE_NAME");
  assert_non_null(gate); /* first the table's oid (capture_relid.c), then the early return */
  assert_true(strstr(pinned, "TG_RELID") > gate); /* the pinned function is no trigger's: no guard */
  gate = strstr(gate, "        RETURN NULL;\n      END IF;\n    END;\n  END IF;\n"
                      "  IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN\n    BEGIN\n"
                               "      IF ROW(NEW.\"title\", NEW.\"body\"\"x\", NEW.\"embedding\", NEW.\"id\")::pg_catalog.record"
                               " OPERATOR(pg_catalog.*=) ROW(OLD.\"title\", OLD.\"body\"\"x\", OLD.\"embedding\", OLD.\"id\")"
                               "::pg_catalog.record THEN\n        RETURN NULL;\n      END IF;\n    EXCEPTION WHEN OTHERS THEN\n"
                               "      NULL;\n    END;\n  END IF;\n  probe := \"public\".\"p2q_pinned_docs\"(TG_OP, NEW, OLD);\n"
                               "  RETURN NULL;\nEND\n$p2q$;\n");
  assert_non_null(gate);
  assert_true(pinned < gate);
  /* the pinned body: the row body without the early return (the gate's), events as before */
  assert_null(strstr(pinned, "IF TG_OP = 'UPDATE' AND ROW("));
  assert_non_null(strstr(pinned, "EXCEPTION WHEN OTHERS THEN\n    slow := true;"));
  assert_true(strstr(pinned, "'upsert', sn, vb, CASE WHEN bad_new IS NULL") < gate);
  p2q_buf_free(&b);
  r.columns.n = 0; /* the whole row: NEW *= OLD */
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "      IF NEW OPERATOR(pg_catalog.*=) OLD THEN\n        RETURN NULL;"));
  p2q_buf_free(&b);
  r = rule(); /* with a filter */
  assert_int_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  assert_null(strstr(p2q_buf_str(&b), "\"p2q_pinned_docs\"(tg_op"));
  assert_non_null(strstr(p2q_buf_str(&b), "'\"public\".\"docs\"'::pg_catalog.regclass AND c.relname OPERATOR(pg_catalog.!~) '[^a-z0-9_]' AND n.nspname OPERATOR(pg_catalog.!~) '[^a-z0-9_]') p2q_p));\nEND\n$p2q_2$;\n"
                                          "DROP FUNCTION IF EXISTS \"public\".\"p2q_pinned_docs\"(text, record, record);\n"));
  p2q_buf_free(&b);
  r.filter = "title <> '\x02'"; /* the oid's mark (capture_relid.c) in the config: refused, not replaced */
  assert_int_not_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  p2q_buf_free(&b);
  r.filter = "title <> '\x03'"; /* the partitions' mark likewise */
  assert_int_not_equal(p2q_capture_install_sql(&r, "public", 7, &b), 0);
  p2q_buf_free(&b);
  r = rule();
  assert_int_equal(p2q_capture_installed_sql(&r, "public", &b), 0);
  /* and the row trigger's function holds the table's oid (a restored pg_dump: reinstalled) */
  assert_non_null(strstr(p2q_buf_str(&b), "SELECT true AND (SELECT pg_catalog.strpos(f.prosrc, '''' ||"
                                          " p.tgrelid::pg_catalog.oid::pg_catalog.text || '''::pg_catalog.oid') > 0 FROM pg_catalog.pg_proc f"
                                          " WHERE f.oid = p.tgfoid), (SELECT pg_catalog.strpos(f.prosrc, '::pg_catalog.name'"
                                          " OPERATOR(pg_catalog.||) (SELECT CASE WHEN pg_catalog.strpos(p2q_p.t,"));
  /* rv16a M-1: the list written in equals the one an install would write now, from the same text */
  assert_non_null(strstr(p2q_buf_str(&b), " FROM pg_catalog.pg_partition_tree(p.tgrelid::pg_catalog.regclass) p2q_pt JOIN"
                                          " pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p2q_pt.relid"));
  assert_non_null(strstr(p2q_buf_str(&b), " WHERE p2q_pt.relid OPERATOR(pg_catalog.<>) p.tgrelid::pg_catalog.regclass AND"));
  assert_non_null(strstr(p2q_buf_str(&b), " p2q_p) OPERATOR(pg_catalog.||) ') THEN -- not the table itself: capture_relid.c')"
                                          " OPERATOR(pg_catalog.>) 0 FROM pg_catalog.pg_proc f WHERE f.oid = p.tgfoid) AND NOT EXISTS"));
  /* rv16b L-1: and so does every guarded function of the rule, attached or not */
  assert_non_null(strstr(p2q_buf_str(&b), " AND NOT EXISTS (SELECT FROM pg_catalog.pg_proc g JOIN pg_catalog.pg_namespace gn"
                                          " ON gn.oid = g.pronamespace WHERE gn.nspname = 'public' AND g.proname IN"
                                          " ('p2q_capture_docs', 'p2q_pinned_docs', 'p2q_insert_docs', 'p2q_delete_docs',"
                                          " 'p2q_truncate_docs') AND pg_catalog.strpos(g.prosrc, ') THEN -- not the table itself:"
                                          " capture_relid.c') OPERATOR(pg_catalog.>) 0 AND NOT pg_catalog.strpos(g.prosrc, "));
  assert_non_null(strstr(p2q_buf_str(&b), " FROM pg_catalog.pg_partition_tree(p.tgrelid::pg_catalog.regclass) p2q_pt JOIN"
                                          " pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p2q_pt.relid"));
  p2q_buf_free(&b);
  assert_int_equal(p2q_capture_drop_sql("docs", "public.docs", "out", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "DROP FUNCTION IF EXISTS \"out\".\"p2q_pinned_docs\"(text, record, record);"));
  p2q_buf_free(&b);
  /* without a filter the pinned function is part of the installed rule, and drift when gone */
  r.filter = NULL;
  assert_int_equal(p2q_capture_installed_sql(&r, "public", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "SELECT pg_catalog.to_regprocedure('\"public\".\"p2q_pinned_docs\"(text, record, record)')"
                                          " IS NOT NULL AND (SELECT pg_catalog.strpos(f.prosrc, "));
  p2q_buf_free(&b);
  assert_int_equal(p2q_capture_drift_sql(&r, "public", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "  RETURN QUERY SELECT '\"public\".\"p2q_pinned_docs\"(text, record, record)'::text,"
                                          " 'function'::text, true WHERE pg_catalog.to_regprocedure("));
  p2q_buf_free(&b);
}

static void test_backfill_and_drop(void **state) {
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_capture_backfill_sql(&r, "out", 3, "upsert", "id > 5", &b), 0);
  const char *s = p2q_buf_str(&b);
  assert_true(strncmp(s, "INSERT INTO \"out\".sync_outbox", 29) == 0);
  assert_non_null(strstr(s, "FROM \"public\".\"docs\" AS r CROSS JOIN LATERAL ("));
  assert_non_null(strstr(s, "FROM json_each(row_to_json(r)) AS e) AS p2q_x WHERE (published_at IS NOT NULL) AND (id > 5)"));
  assert_non_null(strstr(s, "ORDER BY r.\"id\""));
  p2q_buf_free(&b);
  /* by reference: the vector column is named even when nothing reads it, so its absence fails */
  r.columns.n = 0;
  assert_int_equal(p2q_capture_enqueue_fast_sql(&r, "out", 3, "upsert", "c", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "jsonb_build_object('id', r.\"id\"), 'upsert', to_json(r), CASE WHEN "
                                         "r.\"id\" IS NULL THEN 0 WHEN (r.\"embedding\" IS NULL) IS NULL THEN 0 ELSE 3 END"));
  assert_non_null(strstr(p2q_buf_str(&b), " END FROM c AS r"));
  p2q_buf_free(&b);
  r = rule();
  assert_int_equal(p2q_capture_drop_sql("docs", "public.docs", "out", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "DROP FUNCTION IF EXISTS \"out\".\"p2q_capture_docs\"()"));
  p2q_buf_free(&b);
  r.table = "bad name";
  assert_int_equal(p2q_capture_backfill_sql(&r, "out", 3, "upsert", NULL, &b), P2Q_EINVAL);
  p2q_buf_free(&b);
}

static void test_snapshot_and_check(void **state) {
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  /* by name, in config order, json_build_object's format */
  assert_int_equal(p2q_capture_snapshot_expr(&r, "r", &b), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "to_json(e.key)::text || ' : ' || e.value::text, ', ' ORDER BY "
                                         "array_position(ARRAY['title', 'body\"x', 'embedding']::text[], e.key))"));
  assert_non_null(strstr(p2q_buf_str(&b), "FROM json_each(row_to_json(r)) AS e)"));
  p2q_buf_free(&b);
  r.columns.n = 0;
  assert_int_equal(p2q_capture_snapshot_expr(&r, "r", &b), 0);
  assert_string_equal(p2q_buf_str(&b), "to_json(r)");
  p2q_buf_free(&b);
  /* the check names key, filter and routing key; payload columns are checked in the catalog */
  r = rule();
  r.routing_key = "public.tenant(id)";
  assert_int_equal(p2q_capture_check_sql(&r, &b), 0);
  assert_string_equal(p2q_buf_str(&b), "SELECT jsonb_build_object('id', r.\"id\"), (published_at IS NOT NULL)::boolean, "
                                       "(public.tenant(id))::text FROM \"public\".\"docs\" AS r LIMIT 0");
  p2q_buf_free(&b);
}

static void test_columns_and_guard(void **state) {
  p2q_rule_config_t r = rule();
  p2q_buf_t b = P2Q_BUF_INIT;
  static char *cols[] = {"id", "title", "embedding"};
  r.columns.items = cols; r.columns.n = 3;
  r.watch.items = cols; r.watch.n = 2;
  /* each column once, with its first role: key, vector, then payload */
  assert_int_equal(p2q_capture_columns_sql(&r, &b), 0);
  assert_string_equal(p2q_buf_str(&b), "(VALUES ('id', 'key', true), ('embedding', 'vector_column', true), "
                                       "('title', 'columns', false)) AS c(col, used_as, breaks)");
  p2q_buf_free(&b);
  assert_int_equal(p2q_capture_guard_sql("my \"s\"", &b), 0);
  const char *s = p2q_buf_str(&b);
  assert_non_null(strstr(s, "CREATE OR REPLACE FUNCTION \"my \"\"s\"\"\".p2q_ddl_guard() RETURNS event_trigger"));
  assert_non_null(strstr(s, "current_setting('pg2qdrant.allow_ddl', true) = 'on'"));
  assert_non_null(strstr(s, "CREATE EVENT TRIGGER \"p2q_ddl_guard_my \"\"s\"\"\" ON ddl_command_end WHEN TAG IN ('ALTER TABLE')"));
  assert_non_null(strstr(s, "format('SELECT * FROM %s.%I()', '\"my \"\"s\"\"\"', 'p2q_drift_' || r.name)"));
  p2q_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quoting),           cmocka_unit_test(test_qualified),
      cmocka_unit_test(test_template_columns),  cmocka_unit_test(test_install_sql), cmocka_unit_test(test_insert_statement_sql),
      cmocka_unit_test(test_unpinned_statement_sql),
      cmocka_unit_test(test_long_rule_name_refused), cmocka_unit_test(test_dollar_quote_chosen), cmocka_unit_test(test_backfill_and_drop),
      cmocka_unit_test(test_gate_sql),
      cmocka_unit_test(test_snapshot_and_check), cmocka_unit_test(test_columns_and_guard),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

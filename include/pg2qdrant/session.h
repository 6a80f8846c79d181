/*
 * session.h — the settings pinned wherever pg2qdrant turns row values into text, so that what
 * reaches Qdrant (and what `reconcile` recomputes) never depends on the session that wrote or
 * reads a row. ONE list, used by:
 *   - capture.c: SET clauses of every generated trigger function (the writer's own session
 *     settings are saved on entry and restored on exit by PostgreSQL, so the writer sees none of it);
 *     the INSERT/DELETE statement functions of a rule whose columns all have types whose json none
 *     of these changes have no SET clause (every name in them is in pg_catalog) and hand rows of
 *     any other type to the pinned row function (capture_stmt.c, SETTING_FREE);
 *   - pg.c (daemon connections) and admin.c (CLI connections): one set_config() statement run
 *     right after connecting, before any other query. A statement (rather than libpq `options`)
 *     leaves the user's `options`/PGOPTIONS untouched and works through PgBouncer in session mode
 *     (which refuses unknown `-c` options in the startup packet).
 *
 * Why each one (every one changes the text or json output of some type):
 *   TimeZone UTC           timestamptz → "2025-01-01T12:00:00+00:00" (RFC 3339, UTC) in json,
 *                          and the text of tstzrange, timestamptz inside composite/range text
 *   DateStyle ISO, YMD     date/time text inside ranges and other text-output types
 *   IntervalStyle iso_8601 interval → "P1Y2M3DT4H5M6S" (ISO 8601 duration, not PostgreSQL's
 *                          "1 year 2 mons …")
 *   extra_float_digits 3   real/double/geometric output: shortest text that reads back exactly
 *                          (0 or less rounds to 6/15 significant digits: silent loss, and an
 *                          UPDATE changing a later digit would not be seen as a change)
 *   bytea_output hex       bytea → "\\x…" rather than the escape format
 *   lc_monetary C          money → "$12.50" whatever the locale
 * Connections also pin client_encoding UTF8 (snapshot text and hashes are UTF-8 byte strings).
 * search_path changes the text of reg* values (regclass 'public.docs' vs 'docs', regproc, …):
 * trigger functions and CLI sessions (apply, backfill, reconcile build snapshots) run with
 * P2Q_PINNED_SEARCH_PATH; daemon sessions build no snapshot and keep theirs (their SQL is
 * schema-qualified).
 * Not pinned, because they change no output function's text: lc_numeric and lc_time (to_char
 * only), xmloption and xmlbinary (XML parsing and XML functions, not xml_out),
 * timezone_abbreviations and standard_conforming_strings (input only).
 * Values are constants (no quotes inside): they are pasted into SQL literals as they are.
 */
#ifndef P2Q_SESSION_H
#define P2Q_SESSION_H

/* X(name, value) for every pinned setting. */
#define P2Q_PINNED_SETTINGS(X)         \
  X("TimeZone", "UTC")                 \
  X("DateStyle", "ISO, YMD")           \
  X("IntervalStyle", "iso_8601")       \
  X("extra_float_digits", "3")         \
  X("bytea_output", "hex")             \
  X("lc_monetary", "C")

/* " SET name = 'value'" clauses of CREATE FUNCTION. */
#define P2Q_PIN_FUNCTION_SET_(n, v) " SET " n " = '" v "'"
#define P2Q_PINNED_FUNCTION_SET P2Q_PINNED_SETTINGS(P2Q_PIN_FUNCTION_SET_)

/* The search_path of trigger functions and CLI sessions (a list: never quoted as one string). */
#define P2Q_PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/* The statement every pg2qdrant connection runs first (one statement: PQsendQueryParams). */
#define P2Q_PIN_SET_CONFIG_(n, v) "pg_catalog.set_config('" n "', '" v "', false), "
#define P2Q_SESSION_PIN_SQL \
  "SELECT " P2Q_PINNED_SETTINGS(P2Q_PIN_SET_CONFIG_) "pg_catalog.set_config('client_encoding', 'UTF8', false)"

/* CLI sessions (p2q_admin_connect): the same, plus the trigger's search_path. */
#define P2Q_CLI_PIN_SQL \
  P2Q_SESSION_PIN_SQL ", pg_catalog.set_config('search_path', '" P2Q_PINNED_SEARCH_PATH "', false)"

#endif

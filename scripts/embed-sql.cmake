# Generates a C file holding every sql/*.sql file as a NUL-terminated string, named
# p2q_sql_<basename> (e.g. sql/outbox_v1.sql -> p2q_sql_outbox_v1). Run by CMake at build time.
file(WRITE ${OUT} "/* Generated from the sql directory by scripts/embed-sql.cmake. Do not edit. */\n")
string(REPLACE "," ";" FILES "${FILES}")
foreach(f ${FILES})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  file(APPEND ${OUT} "const char p2q_sql_${name}[] = {${hex}0};\n")
endforeach()

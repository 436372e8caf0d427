# Writes the configuration file the package installs as /etc/rolloutd/rolloutd.conf: the
# documented example config/rolloutd.conf with database.conninfo set for a local PostgreSQL.
# Run as a script: cmake -DIN=... -DOUT=... -DCONNINFO=... -P packaged-conf.cmake
#
# The example stays the settings table's own output (`rolloutd --print-config`, checked by
# tools/dev test); only the installed copy differs, in this one line and the header below.
foreach(v IN ITEMS IN OUT CONNINFO)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "packaged-conf.cmake: ${v} is not set")
  endif()
endforeach()
if(CONNINFO MATCHES "[\"\\\\\n]")
  message(FATAL_ERROR "packaged-conf.cmake: the conninfo must not contain quotes, backslashes or newlines")
endif()

file(READ "${IN}" text)
# the one line `  conninfo = "...";` in the database group (admin_conninfo does not match: the
# line must start with spaces and then `conninfo`)
# (no `;` in the pattern: CMake would split the match into a list there)
set(pattern "\n  conninfo = \"[^\"\n]*\"")
string(REGEX MATCHALL "${pattern}" found "${text}")
list(LENGTH found n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "packaged-conf.cmake: expected one `conninfo = \"...\";` line in ${IN}, found ${n}")
endif()
string(REGEX REPLACE "${pattern}" "\n  conninfo = \"${CONNINFO}\"" text "${text}")

set(header "# Installed by the rolloutd package. It differs from `rolloutd --print-config` in\n"
           "# database.conninfo only: PostgreSQL on this host over its Unix socket, as the database role\n"
           "# rolloutd (peer authentication: the service runs as the system user rolloutd). Create that\n"
           "# role with `CREATE ROLE rolloutd LOGIN IN ROLE rollout_service` (see rolloutd(8) and\n"
           "# /usr/share/doc/rolloutd/operations.md), or point conninfo at your database.\n"
           "# Check a change with `rolloutd --check-config`, then `systemctl reload rolloutd` (settings\n"
           "# marked [reload]) or `systemctl restart rolloutd` (the others).\n#\n")
string(CONCAT text ${header} "${text}")
file(WRITE "${OUT}.tmp" "${text}")
file(RENAME "${OUT}.tmp" "${OUT}")

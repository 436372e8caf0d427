# Installation rules and the Debian package (CPack DEB). Included at the end of the top-level
# CMakeLists.txt, after the targets exist.
#
# The package build (tests/package/package.sh, `tools/dev package`):
#   cmake -S . -B build-package -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROLLOUT_TESTS=OFF \
#         -DROLLOUT_SCHEMA_DIR=/usr/share/rolloutd/schema -DCMAKE_INSTALL_PREFIX=/usr
#   cmake --build build-package && (cd build-package && cpack -G DEB)
#
# What goes where (with the prefix /usr):
#   /usr/sbin/rolloutd                      the daemon
#   /usr/bin/rolloutctl                     the admins' tool
#   /etc/rolloutd/rolloutd.conf             the configuration (a conffile)
#   /usr/share/rolloutd/schema/NNN_*.sql    the migrations (rolloutctl's default --schema-dir)
#   /usr/share/man/man8/rolloutd.8.gz, /usr/share/man/man1/rolloutctl.1.gz
#   /lib/systemd/system/rolloutd.service    the unit
#   /usr/share/doc/rolloutd/                operations.md, README.md, the alert rules, copyright
include(GNUInstallDirs)

set(ROLLOUT_PACKAGE_CONNINFO "host=/var/run/postgresql dbname=rollout user=rolloutd"
    CACHE STRING "database.conninfo of the installed /etc/rolloutd/rolloutd.conf")
set(ROLLOUT_PACKAGE_MAINTAINER "rolloutd maintainers <rolloutd@hessen.invalid>"
    CACHE STRING "Maintainer field of the Debian package")
# With the prefix /usr (the package) the configuration goes to /etc and the unit to
# /lib/systemd/system; with any other prefix both stay under it (relative destinations, so
# `cmake --install --prefix` and DESTDIR work as usual).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_rollout_conf_dest /etc/rolloutd)
  set(_rollout_unitdir_default /lib/systemd/system)
else()
  set(_rollout_conf_dest ${CMAKE_INSTALL_SYSCONFDIR}/rolloutd)
  set(_rollout_unitdir_default lib/systemd/system)
endif()
set(ROLLOUT_SYSTEMD_UNIT_DIR ${_rollout_unitdir_default}
    CACHE STRING "Where the systemd unit is installed (relative: under the prefix)")

set(ROLLOUT_INSTALLED_SCHEMA_DIR ${CMAKE_INSTALL_FULL_DATADIR}/rolloutd/schema)
if(NOT ROLLOUT_SCHEMA_DIR STREQUAL ROLLOUT_INSTALLED_SCHEMA_DIR)
  message(STATUS "rolloutctl looks for migrations in ${ROLLOUT_SCHEMA_DIR}, they are installed in "
                 "${ROLLOUT_INSTALLED_SCHEMA_DIR}: for an installed rolloutctl configure with "
                 "-DROLLOUT_SCHEMA_DIR=${ROLLOUT_INSTALLED_SCHEMA_DIR}")
endif()

# ---- generated files --------------------------------------------------------------------------
set(_rollout_pkg_dir ${CMAKE_BINARY_DIR}/packaging)

add_custom_command(OUTPUT ${_rollout_pkg_dir}/rolloutd.conf
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/config/rolloutd.conf
          -DOUT=${_rollout_pkg_dir}/rolloutd.conf "-DCONNINFO=${ROLLOUT_PACKAGE_CONNINFO}"
          -P ${CMAKE_SOURCE_DIR}/cmake/packaged-conf.cmake
  DEPENDS ${CMAKE_SOURCE_DIR}/config/rolloutd.conf ${CMAKE_SOURCE_DIR}/cmake/packaged-conf.cmake
  COMMENT "Installed configuration (database.conninfo = ${ROLLOUT_PACKAGE_CONNINFO})")

add_custom_command(OUTPUT ${_rollout_pkg_dir}/rolloutd.service
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/packaging/rolloutd.service
          -DOUT=${_rollout_pkg_dir}/rolloutd.service -DSBINDIR=${CMAKE_INSTALL_FULL_SBINDIR}
          -DSYSCONFDIR=${CMAKE_INSTALL_FULL_SYSCONFDIR}
          -P ${CMAKE_SOURCE_DIR}/cmake/installed-unit.cmake
  DEPENDS ${CMAKE_SOURCE_DIR}/packaging/rolloutd.service ${CMAKE_SOURCE_DIR}/cmake/installed-unit.cmake)

# Debian wants man pages and the changelog compressed, without a time stamp in the gzip header.
find_program(ROLLOUT_GZIP gzip REQUIRED)
set(_rollout_gz_outputs)
# packaging/changelog is the Debian changelog: changelog.Debian.gz in the package.
foreach(src IN ITEMS man/rolloutd.8 man/rolloutctl.1 changelog)
  get_filename_component(_name ${src} NAME)
  if(_name STREQUAL "changelog")
    set(_name changelog.Debian)
  endif()
  add_custom_command(OUTPUT ${_rollout_pkg_dir}/${_name}.gz
    COMMAND ${ROLLOUT_GZIP} -9 -n -c ${CMAKE_SOURCE_DIR}/packaging/${src} > ${_rollout_pkg_dir}/${_name}.gz
    DEPENDS ${CMAKE_SOURCE_DIR}/packaging/${src})
  list(APPEND _rollout_gz_outputs ${_rollout_pkg_dir}/${_name}.gz)
endforeach()

add_custom_target(rollout_packaging_files ALL
  DEPENDS ${_rollout_pkg_dir}/rolloutd.conf ${_rollout_pkg_dir}/rolloutd.service ${_rollout_gz_outputs})

# ---- install() --------------------------------------------------------------------------------
install(TARGETS rolloutd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS rolloutctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${_rollout_pkg_dir}/rolloutd.conf DESTINATION ${_rollout_conf_dest})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/schema/ DESTINATION ${CMAKE_INSTALL_DATADIR}/rolloutd/schema
        FILES_MATCHING PATTERN "[0-9][0-9][0-9]_*.sql")
install(FILES ${_rollout_pkg_dir}/rolloutd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${_rollout_pkg_dir}/rolloutctl.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${_rollout_pkg_dir}/rolloutd.service DESTINATION ${ROLLOUT_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/operations.md ${CMAKE_SOURCE_DIR}/README.md
              ${CMAKE_SOURCE_DIR}/packaging/rolloutd-alerts.yml
              ${CMAKE_SOURCE_DIR}/packaging/copyright ${_rollout_pkg_dir}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- CPack: the Debian package ----------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rolloutd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Hessian state administration, central IT")
set(CPACK_PACKAGE_CONTACT ${ROLLOUT_PACKAGE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "records the rollout of the mobile digital workplace and shows its progress")
# One string (a list would lose the semicolons); CPack indents the lines for the control file.
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "rolloutd records the rollout of mobile devices, the HessenSmartphone,\n"
  "HessenVoice and automatic WLAN login to the employees of the Hessian\n"
  "state administration in PostgreSQL, and shows the progress against the\n"
  "targets overall, per Ressort and per Dienststelle. IT-support teams post\n"
  "rollout events over HTTP, monitoring reads /status and /metrics, and a\n"
  "dashboard shows where the rollout stands.\n"
  "rolloutctl is the admins' tool: migrations, imports of the employee and\n"
  "office lists, targets, look-ups, reports, verification and API tokens.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# The staging directory of the package build, not the builder's /etc or /lib
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES OFF)

set(CPACK_DEBIAN_PACKAGE_NAME rolloutd)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${ROLLOUT_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries' packages come from dpkg-shlibdeps (package dpkg-dev); adduser for the
# system user the maintainer scripts create.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql (>= 15), prometheus")
# Debug symbols in rolloutd-dbgsym_VERSION_ARCH.ddeb, the binaries in the .deb stripped.
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)

include(CPack)

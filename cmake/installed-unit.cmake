# Writes the systemd unit for the install prefix: packaging/rolloutd.service names
# /usr/sbin/rolloutd and /etc/rolloutd/rolloutd.conf (the Debian package's paths); another
# prefix gets its own paths. Run as a script:
#   cmake -DIN=... -DOUT=... -DSBINDIR=... -DSYSCONFDIR=... -P installed-unit.cmake
file(READ "${IN}" text)
string(REPLACE "/usr/sbin/rolloutd" "${SBINDIR}/rolloutd" text "${text}")
string(REPLACE "/etc/rolloutd/rolloutd.conf" "${SYSCONFDIR}/rolloutd/rolloutd.conf" text "${text}")
file(WRITE "${OUT}.tmp" "${text}")
file(RENAME "${OUT}.tmp" "${OUT}")

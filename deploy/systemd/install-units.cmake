# SPDX-License-Identifier: MIT
# Run by cmake --install (and cpack): writes the systemd units for this install's prefix from
# deploy/systemd/*.service.in and installs them. In: NTUN_SRC, NTUN_OUT (a build directory),
# NTUN_CONFDIR, NTUN_BINDIR_REL, NTUN_SYSTEMD_UNITDIR ("" = the default for the prefix).
if(IS_ABSOLUTE "${NTUN_BINDIR_REL}")
	set(NTUN_BINDIR "${NTUN_BINDIR_REL}")
else()
	set(NTUN_BINDIR "${CMAKE_INSTALL_PREFIX}/${NTUN_BINDIR_REL}")
endif()
set(unitdir "${NTUN_SYSTEMD_UNITDIR}")
if(NOT unitdir)
	if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
		set(unitdir /lib/systemd/system) # Debian 12's place for packaged units
	else()
		set(unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system") # on systemd's search path too
	endif()
endif()

set(in "${NTUN_SRC}/deploy/systemd")
configure_file("${in}/ntun-server.service.in" "${NTUN_OUT}/ntun-server.service" @ONLY)
configure_file("${in}/ntun-proxy.service.in" "${NTUN_OUT}/ntun-proxy.service" @ONLY)
# One source for the client unit and its template for further instances.
set(NTUN_UNIT ntun-client)
set(NTUN_CLIENT_CONF client.yaml)
set(NTUN_INSTANCE_ARG "")
set(NTUN_INSTANCE_DOC ".service")
set(NTUN_INSTANCE_DESC "")
configure_file("${in}/ntun-client.service.in" "${NTUN_OUT}/ntun-client.service" @ONLY)
set(NTUN_UNIT ntun-client@NAME)
set(NTUN_CLIENT_CONF client-%i.yaml)
set(NTUN_INSTANCE_ARG " --instance %i")
set(NTUN_INSTANCE_DOC "@.service, instance %i")
set(NTUN_INSTANCE_DESC ", instance %i")
configure_file("${in}/ntun-client.service.in" "${NTUN_OUT}/ntun-client@.service" @ONLY)

file(INSTALL DESTINATION "${unitdir}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
	WORLD_READ FILES "${NTUN_OUT}/ntun-server.service" "${NTUN_OUT}/ntun-proxy.service"
	"${NTUN_OUT}/ntun-client.service" "${NTUN_OUT}/ntun-client@.service")

/* names.c - bus and stream names, and where a bus lives in shared memory. */
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/internal.h"

/* A name is 1-63 bytes of [A-Za-z0-9_.-] not starting with '.': safe as a
 * file name, and never "." or "..". */
int check_name(const char *what, const char *name)
{
	size_t len, i;

	if (!name)
		return set_error(AGENTBUS_E_INVALID, "%s name is missing", what);
	len = strlen(name);
	if (len == 0 || len > AGENTBUS_NAME_MAX)
		return set_error(AGENTBUS_E_INVALID, "%s name must be 1-%d bytes, got %zu", what,
				 AGENTBUS_NAME_MAX, len);
	if (name[0] == '.')
		return set_error(AGENTBUS_E_INVALID, "%s name '%s' starts with '.'", what, name);
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return set_error(AGENTBUS_E_INVALID,
					 "%s name '%.63s' has a character outside [A-Za-z0-9_.-]",
					 what, name);
	}
	return 0;
}

/* NULL -> $AGENTBUS_BUS -> "default". */
int resolve_bus_name(const char *name, char *out)
{
	int err;

	if (!name || !*name)
		name = getenv("AGENTBUS_BUS");
	if (!name || !*name)
		name = "default";
	err = check_name("bus", name);
	if (err)
		return err;
	strcpy(out, name);
	return 0;
}

int bus_dir_path(const char *bus, char *out, size_t out_len)
{
	char base[PATH_LEN];
	int n;

	if (shm_base_dir(base, sizeof(base)) != 0)
		return set_error(-ENAMETOOLONG, "AGENTBUS_SHM_DIR is too long");
	n = snprintf(out, out_len, "%s/%s", base, bus);
	if (n < 0 || (size_t)n >= out_len)
		return set_error(-ENAMETOOLONG, "shared-memory path too long");
	return 0;
}

/* @a/@b into @out; -ENAMETOOLONG (with a message) if it does not fit. */
int path_join(char *out, size_t out_len, const char *a, const char *b)
{
	int n = snprintf(out, out_len, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= out_len)
		return set_error(-ENAMETOOLONG, "path %s/%s is too long", a, b);
	return 0;
}

/* mkdir -p, every level 0700 (a data directory is private). */
int make_dir_path(const char *path)
{
	char partial[PATH_LEN];
	size_t i, len = strlen(path);

	if (len >= sizeof(partial))
		return set_error(-ENAMETOOLONG, "path %s is too long", path);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		memcpy(partial, path, i);
		partial[i] = '\0';
		if (mkdir(partial, 0700) != 0 && errno != EEXIST)
			return set_error(-errno, "cannot make %s: %s", partial, strerror(errno));
	}
	return 0;
}

/* @given, else $AGENTBUS_DATA, else $XDG_DATA_HOME/agentbus, else
 * $HOME/.local/share/agentbus. */
int resolve_data_dir(const char *given, char *out)
{
	const char *env;
	int n;

	if (given && *given)
		n = snprintf(out, PATH_LEN, "%s", given);
	else if ((env = getenv("AGENTBUS_DATA")) && *env)
		n = snprintf(out, PATH_LEN, "%s", env);
	else if ((env = getenv("XDG_DATA_HOME")) && *env)
		n = snprintf(out, PATH_LEN, "%s/agentbus", env);
	else if ((env = getenv("HOME")) && *env)
		n = snprintf(out, PATH_LEN, "%s/.local/share/agentbus", env);
	else
		return set_error(AGENTBUS_E_INVALID, "no data directory: set AGENTBUS_DATA or HOME");
	if (n < 0 || n >= PATH_LEN)
		return set_error(-ENAMETOOLONG, "data directory path is too long");
	if (out[0] != '/')
		return set_error(AGENTBUS_E_INVALID, "data directory '%s' is not an absolute path", out);
	return 0;
}

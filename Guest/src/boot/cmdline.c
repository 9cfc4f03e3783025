/* cmdline.c - "key=value key2=value2 flag" parsing. Runs in ring 3 on the
 * copy that start.c took of start_info's command line. A bare word is a
 * key with the empty value. Later duplicates win (like Linux). */
#include "kit.h"

#define MAX_ARGS 32

static char buf[KIT_CMDLINE_MAX];
static const char *keys[MAX_ARGS], *vals[MAX_ARGS];
static unsigned int nargs;

void cmdline_parse(const char *s)
{
	size_t n = strlen(s);
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	nargs = 0;

	char *p = buf;
	while (*p && nargs < MAX_ARGS) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			*p++ = '\0';
		if (!*p)
			break;
		keys[nargs] = p;
		vals[nargs] = "";
		int seen_eq = 0;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
			if (*p == '=' && !seen_eq) { /* split at the first '=' only */
				seen_eq = 1;
				*p = '\0';
				vals[nargs] = p + 1;
			}
			p++;
		}
		nargs++;
	}
}

const char *cmdline_get(const char *key)
{
	for (unsigned int i = nargs; i-- > 0;)
		if (strcmp(keys[i], key) == 0)
			return vals[i];
	return NULL;
}

uint64_t cmdline_get_u64(const char *key, uint64_t dflt)
{
	const char *v = cmdline_get(key);
	uint64_t out;
	if (!v || parse_u64(v, &out) != 0)
		return dflt;
	return out;
}

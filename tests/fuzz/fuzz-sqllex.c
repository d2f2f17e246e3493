/*
 * tests/fuzz/fuzz-sqllex.c - libFuzzer target for the SQL lexer
 * (core/sqllex.c): the input, as a C string, is cut into tokens and read
 * as one expression in each dialect; every token lies inside the text and
 * the lexer always moves forward, ends, and never crashes.
 */
#include <stdlib.h>
#include <string.h>

#include "core/sqllex.h"
#include "core/xmalloc.h"
#include "fuzz.h"

/* Every name the expression scan reports lies inside the text. */
static void
check_name(void *arg, const struct sqllex *lx, const struct sqllex_token *tok,
	   enum sqllex_role role)
{
	size_t len = *(const size_t *)arg;
	char *name;

	(void)role;
	if (tok->pos + tok->len > len)
		abort();
	name = sqllex_ident(lx, tok);
	free(name);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	size_t len = strlen(text);
	int b;

	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		struct sqllex lx;
		struct sqllex_token tok;
		struct sqllex_token at;
		const char *why = NULL;
		size_t last = 0, n = 0;

		sqllex_init(&lx, (enum db_backend)b, text);
		while (sqllex_next(&lx, &tok) != SQLLEX_END) {
			if (tok.pos + tok.len > len || (n++ > 0 && tok.pos < last) ||
			    n > len + 1)
				abort();
			last = tok.pos + tok.len;
			if (tok.kind == SQLLEX_ERROR)
				break;
		}
		if (sqllex_expr_scan((enum db_backend)b, text, check_name, &len, &why, &at) < 0 &&
		    why == NULL)
			abort();
		(void)sqllex_has_line_comment((enum db_backend)b, text);
	}
	free(text);
	return 0;
}

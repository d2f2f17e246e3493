/*
 * tests/unit/test-ydoc.c - the YAML node tree: positions, refused YAML
 * (aliases, anchors, duplicate and non-scalar keys, second documents),
 * syntax errors at libyaml's position, and the typed scalar reads.
 */
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "core/ydoc.h"
#include "testlib.h"

static struct ydoc
load_ok(const char *text)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc;

	cr_assert(ydoc_load_string(&doc, "t.yaml", text, strlen(text), &err) == 0,
		  "%s", err.message);
	err_release(&err);
	return doc;
}

/* Load text that must fail; check the code and the whole message. */
static void
load_fails(const char *text, const char *message)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc;
	int rc;

	rc = ydoc_load_string(&doc, "t.yaml", text, strlen(text), &err);
	cr_assert_eq(rc, DBPHASE_EBADINPUT, "expected failure for:\n%s", text);
	cr_assert_eq(err.code, DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, message);
	cr_assert_null(doc.root);
	cr_assert_null(doc.path);
	ydoc_release(&doc);
	err_release(&err);
}

Test(ydoc, tree_and_positions)
{
	struct ydoc doc = load_ok("# a comment\n"
				  "description: Split names\n"
				  "operations:\n"
				  "  - add_column: {table: t, column: \"c\"}\n"
				  "  - drop_index:\n"
				  "      name: 'ix'\n");
	const struct ynode *root = doc.root, *ops, *op, *args;

	cr_assert_str_eq(doc.path, "t.yaml");
	cr_assert_eq(root->kind, YNODE_MAP);
	cr_assert_eq(root->n, 2);
	cr_assert_eq(root->line, 2);
	cr_assert_eq(root->col, 1);
	cr_assert_str_eq(root->keys[0]->scalar, "description");
	cr_assert_str_eq(ynode_get(root, "description")->scalar, "Split names");
	cr_assert_eq(ynode_get(root, "description")->line, 2);
	cr_assert_eq(ynode_get(root, "description")->col, 14);

	ops = ynode_get(root, "operations");
	cr_assert_eq(ops->kind, YNODE_SEQ);
	cr_assert_eq(ops->n, 2);
	cr_assert_eq(ops->line, 4);
	cr_assert_eq(ops->col, 3);
	cr_assert_eq(ynode_key(root, "operations")->line, 3);
	cr_assert_eq(ynode_key(root, "operations")->col, 1);

	op = ops->items[0];
	cr_assert_eq(op->kind, YNODE_MAP);
	cr_assert_eq(op->line, 4);
	cr_assert_eq(op->col, 5);
	args = ynode_get(op, "add_column");
	cr_assert_eq(args->kind, YNODE_MAP);
	cr_assert_eq(args->col, 17);
	cr_assert(ynode_get(args, "table")->plain);
	cr_assert_not(ynode_get(args, "column")->plain);
	cr_assert_eq(ynode_get(args, "column")->col, 36);

	args = ynode_get(ops->items[1], "name");
	cr_assert_null(args);
	args = ynode_get(ynode_get(ops->items[1], "drop_index"), "name");
	cr_assert_str_eq(args->scalar, "ix");
	cr_assert_eq(args->line, 6);
	cr_assert_eq(args->col, 13);

	cr_assert_null(ynode_get(root, "nope"));
	cr_assert_null(ynode_key(root, "nope"));
	cr_assert_null(ynode_get(ops, "operations"));
	cr_assert_str_eq(ynode_kind_name(root), "a mapping");
	cr_assert_str_eq(ynode_kind_name(ops), "a list");
	cr_assert_str_eq(ynode_kind_name(args), "a string");
	ydoc_release(&doc);
	ydoc_release(&doc);	/* released twice: harmless */
}

Test(ydoc, empty_documents)
{
	struct ydoc doc = load_ok("");

	cr_assert_null(doc.root);
	ydoc_release(&doc);
	doc = load_ok("# nothing but a comment\n\n");
	cr_assert_null(doc.root);
	ydoc_release(&doc);
	doc = load_ok("---\n");
	cr_assert(ynode_is_null(doc.root));
	ydoc_release(&doc);
}

Test(ydoc, nulls)
{
	struct ydoc doc = load_ok("a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: ''\ng: \"null\"\nh: nil\n");
	const char *nulls[] = { "a", "b", "c", "d", "e" };
	size_t i;

	for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		cr_assert(ynode_is_null(ynode_get(doc.root, nulls[i])), "%s", nulls[i]);
	cr_assert_not(ynode_is_null(ynode_get(doc.root, "f")));
	cr_assert_not(ynode_is_null(ynode_get(doc.root, "g")));
	cr_assert_not(ynode_is_null(ynode_get(doc.root, "h")));
	cr_assert_not(ynode_is_null(doc.root));
	cr_assert_not(ynode_is_null(NULL));
	cr_assert_str_eq(ynode_kind_name(ynode_get(doc.root, "a")), "null");
	ydoc_release(&doc);
}

Test(ydoc, syntax_error_at_libyaml_position)
{
	load_fails("a: 1\nb: c: d\n",
		   "t.yaml:2:5: mapping values are not allowed in this context");
	load_fails("a: 1\nb: [1, 2\n",
		   "t.yaml:3:1: did not find expected ',' or ']'"
		   " (while parsing a flow sequence at line 2, column 4)");
}

Test(ydoc, tab_indentation)
{
	load_fails("a:\n\tb: 1\n",
		   "t.yaml:2:1: found character that cannot start any token"
		   " (while scanning for the next token at line 2, column 1)");
}

Test(ydoc, bad_indentation)
{
	load_fails("a:\n  b: 1\n c: 2\n",
		   "t.yaml:3:2: did not find expected key"
		   " (while parsing a block mapping at line 1, column 1)");
}

Test(ydoc, duplicate_key)
{
	load_fails("a: 1\nb:\n  c: x\n  d: y\n  c: z\n",
		   "t.yaml:5:3: duplicate key 'c' (first written at line 3)");
	/* Same text, different quoting: still the same key. */
	load_fails("{a: 1, \"a\": 2}\n", "t.yaml:1:8: duplicate key 'a' (first written at line 1)");
}

/*
 * A mapping of 200,000 keys loads in a moment: the duplicate check is not
 * quadratic (it took over 13 minutes, far past this suite's timeout).
 */
Test(ydoc, large_mapping_loads)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;
	struct ydoc doc;
	int i;

	strbuf_addstr(&sb, "big:\n");
	for (i = 0; i < 200000; i++)
		strbuf_addf(&sb, "  k%d: v%d\n", i, i);
	cr_assert_eq(ydoc_load_string(&doc, "big.yaml", sb.buf, sb.len, &err), 0, "%s",
		     err.message);
	cr_assert_eq(ynode_get(doc.root, "big")->n, 200000);
	cr_assert_str_eq(ynode_get(doc.root, "big")->keys[199999]->scalar, "k199999");
	ydoc_release(&doc);

	/* The same with one key written again near the end: both lines named. */
	strbuf_addstr(&sb, "  k17: again\n");
	cr_assert_eq(ydoc_load_string(&doc, "big.yaml", sb.buf, sb.len, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message,
			 "big.yaml:200002:3: duplicate key 'k17' (first written at line 19)");
	strbuf_release(&sb);
	err_release(&err);
}

/* Of several repeated keys, the earliest repeat is reported. */
Test(ydoc, duplicate_key_earliest_repeat)
{
	load_fails("z: 1\na: 1\nz: 2\na: 2\nz: 3\n",
		   "t.yaml:3:1: duplicate key 'z' (first written at line 1)");
	load_fails("b: 1\na: 1\nc: 1\na: 2\nb: 2\n",
		   "t.yaml:4:1: duplicate key 'a' (first written at line 2)");
}

/* A huge key or value is quoted in a message only in part, cut with "...". */
Test(ydoc, long_values_cut_in_messages)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf sb = STRBUF_INIT, want = STRBUF_INIT;
	const struct ynode *v;
	struct ydoc doc;
	bool flag;
	int i;

	/* A 1 MB key written twice (explicit keys: libyaml's plain ones stop at 1024). */
	for (i = 0; i < 2; i++) {
		strbuf_addstr(&sb, "? ");
		strbuf_grow(&sb, 1024 * 1024);
		memset(sb.buf + sb.len, 'k', 1024 * 1024);
		strbuf_setlen(&sb, sb.len + 1024 * 1024);
		strbuf_addstr(&sb, "\n: 1\n");
	}
	cr_assert_eq(ydoc_load_string(&doc, "t.yaml", sb.buf, sb.len, &err), DBPHASE_EBADINPUT);
	strbuf_addstr(&want, "t.yaml:3:3: duplicate key '");
	for (i = 0; i < 80; i++)
		strbuf_addch(&want, 'k');
	strbuf_addstr(&want, "...' (first written at line 1)");
	cr_assert_lt(strlen(err.message), 200, "a message of %zu bytes", strlen(err.message));
	cr_assert_str_eq(err.message, want.buf);

	/* A 1 MB value of the wrong type; the cut never splits a character. */
	strbuf_reset(&sb);
	strbuf_addstr(&sb, "a: x");
	for (i = 0; i < 512 * 1024; i++)
		strbuf_addstr(&sb, "\xc3\xa9");	/* é */
	strbuf_addch(&sb, '\n');
	doc = load_ok(sb.buf);
	v = ynode_get(doc.root, "a");
	cr_assert_eq(ynode_bool(&doc, v, "'a'", &flag, &err), DBPHASE_EBADINPUT);
	strbuf_reset(&want);
	strbuf_addstr(&want, "t.yaml:1:4: 'a' must be true or false, not 'x");
	for (i = 0; i < 39; i++)
		strbuf_addstr(&want, "\xc3\xa9");
	strbuf_addstr(&want, "...'");
	cr_assert_lt(strlen(err.message), 200, "a message of %zu bytes", strlen(err.message));
	cr_assert_str_eq(err.message, want.buf);
	ydoc_release(&doc);
	strbuf_release(&sb);
	strbuf_release(&want);
	err_release(&err);
}

Test(ydoc, alias_refused_at_the_alias)
{
	load_fails("a: &x 1\nb:\n  - *x\n",
		   "t.yaml:3:5: alias '*x' is not allowed; write the value in place"
		   " (anchor at line 1)");
}

Test(ydoc, anchor_refused)
{
	load_fails("a: 1\nb: &name\n  c: 2\n",
		   "t.yaml:2:4: anchor '&name' is not allowed; write the value in place");
}

Test(ydoc, non_scalar_key)
{
	load_fails("x: 1\n? [a, b]\n: c\n", "t.yaml:2:3: a mapping key must be a string, not a list");
	load_fails("{{a: 1}: b}\n", "t.yaml:1:2: a mapping key must be a string, not a mapping");
}

Test(ydoc, second_document)
{
	load_fails("a: 1\n---\nb: 2\n",
		   "t.yaml:2:1: a second document; the file must hold exactly one");
}

Test(ydoc, nul_in_string)
{
	load_fails("a: \"x\\0y\"\n", "t.yaml:1:4: a string may not contain a NUL character");
}

Test(ydoc, invalid_utf8)
{
	load_fails("a: 1\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet (byte 0xFF)");
}

Test(ydoc, nesting_limit)
{
	struct strbuf sb = STRBUF_INIT;
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc;
	int i;

	for (i = 0; i < 10000; i++)
		strbuf_addch(&sb, '[');
	cr_assert_eq(ydoc_load_string(&doc, "deep.yaml", sb.buf, sb.len, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "deep.yaml:1:257: nested deeper than 256 levels");
	strbuf_release(&sb);
	err_release(&err);
}

Test(ydoc, load_file)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	char *dir = test_mkdtemp(), *path, *want;
	struct ydoc doc;

	test_write_file(dir, "ok.yaml", "a: [1, 2]\n");
	path = xasprintf("%s/ok.yaml", dir);
	cr_assert_eq(ydoc_load_file(&doc, path, &err), 0, "%s", err.message);
	cr_assert_str_eq(doc.path, path);
	cr_assert_eq(ynode_get(doc.root, "a")->n, 2);
	ydoc_release(&doc);
	free(path);

	test_write_file(dir, "bad.yaml", "a: 1\n  b: 2\n");
	path = xasprintf("%s/bad.yaml", dir);
	cr_assert_eq(ydoc_load_file(&doc, path, &err), DBPHASE_EBADINPUT);
	want = xasprintf("%s:2:4: mapping values are not allowed in this context", path);
	cr_assert_str_eq(err.message, want);
	free(want);
	free(path);

	path = xasprintf("%s/missing.yaml", dir);
	cr_assert_eq(ydoc_load_file(&doc, path, &err), DBPHASE_EIO);
	want = xasprintf("cannot read '%s': No such file or directory", path);
	cr_assert_str_eq(err.message, want);
	cr_assert_null(doc.root);
	free(want);
	free(path);

	cr_assert_eq(ydoc_load_file(&doc, dir, &err), DBPHASE_EIO);
	want = xasprintf("cannot read '%s': Is a directory", dir);
	cr_assert_str_eq(err.message, want);
	free(want);

	err_release(&err);
	test_rmtree(dir);
	free(dir);
}

Test(ydoc, errorf)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc = load_ok("a:\n  b: 1\n");

	cr_assert_eq(ydoc_errorf(&doc, ynode_get(ynode_get(doc.root, "a"), "b"), &err,
				 "'%s' is wrong", "b"), DBPHASE_EBADINPUT);
	cr_assert_eq(err.code, DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:2:6: 'b' is wrong");
	ydoc_errorf(&doc, NULL, &err, "nothing here");
	cr_assert_str_eq(err.message, "t.yaml:1:1: nothing here");
	ydoc_release(&doc);
	err_release(&err);
}

Test(ydoc, typed_bool)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc = load_ok("a: true\nb: no\nc: Yes\nd: FALSE\ne: 'true'\nf: maybe\ng: [x]\n");
	bool v = false;

	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "a"), "'a'", &v, &err), 0);
	cr_assert(v);
	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "b"), "'b'", &v, &err), 0);
	cr_assert_not(v);
	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "c"), "'c'", &v, &err), 0);
	cr_assert(v);
	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "d"), "'d'", &v, &err), 0);
	cr_assert_not(v);
	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "e"), "'nullable'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:5:4: 'nullable' must be true or false, not 'true'");
	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "f"), "'f'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:6:4: 'f' must be true or false, not 'maybe'");
	cr_assert_eq(ynode_bool(&doc, ynode_get(doc.root, "g"), "'g'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:7:4: 'g' must be true or false, not a list");
	ydoc_release(&doc);
	err_release(&err);
}

Test(ydoc, typed_int)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc = load_ok("a: 42\nb: -7\nc: 9223372036854775807\n"
				  "d: -9223372036854775808\ne: 9223372036854775808\n"
				  "f: 1.5\ng: '3'\nh: 0x10\ni: +\n");
	int64_t v = 0;

	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "a"), "'a'", &v, &err), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "b"), "'b'", &v, &err), 0);
	cr_assert_eq(v, -7);
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "c"), "'c'", &v, &err), 0);
	cr_assert_eq(v, INT64_MAX);
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "d"), "'d'", &v, &err), 0);
	cr_assert_eq(v, INT64_MIN);
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "e"), "'e'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:5:4: 'e' must be an integer from"
			 " -9223372036854775808 to 9223372036854775807, not '9223372036854775808'");
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "f"), "'f'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:6:4: 'f' must be an integer, not '1.5'");
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "g"), "'g'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:7:4: 'g' must be an integer, not '3'");
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "h"), "'h'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_eq(ynode_int(&doc, ynode_get(doc.root, "i"), "'i'", &v, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_eq(ynode_int(&doc, NULL, "'size'", &v, &err), DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:1:1: 'size' must be an integer, not nothing");
	ydoc_release(&doc);
	err_release(&err);
}

Test(ydoc, typed_str)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc = load_ok("a: plain\nb: \"quoted\"\nc: 12\nd: {x: 1}\n");
	const char *s = NULL;

	cr_assert_eq(ynode_str(&doc, ynode_get(doc.root, "a"), "'a'", &s, &err), 0);
	cr_assert_str_eq(s, "plain");
	cr_assert_eq(ynode_str(&doc, ynode_get(doc.root, "b"), "'b'", &s, &err), 0);
	cr_assert_str_eq(s, "quoted");
	cr_assert_eq(ynode_str(&doc, ynode_get(doc.root, "c"), "'c'", &s, &err), 0);
	cr_assert_str_eq(s, "12");
	cr_assert_eq(ynode_str(&doc, ynode_get(doc.root, "d"), "'name'", &s, &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "t.yaml:4:4: 'name' must be a string, not a mapping");
	ydoc_release(&doc);
	err_release(&err);
}

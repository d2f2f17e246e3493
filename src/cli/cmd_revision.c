/*
 * cli/cmd_revision.c - `dbphase revision -m MESSAGE`: the next migration
 * file, named NNN_slug.yaml after the message, with a skeleton to fill in.
 *
 * The skeleton applies nothing: its list of operations is empty, which the
 * repository loader refuses (naming the file) until the author writes one,
 * and a commented example of every operation of the catalog, made from
 * the operation's required parameters, shows how.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

/* "Split customer name!" -> "split_customer_name" (at most 48 characters). */
static char *
slugify(const char *msg)
{
	struct strbuf sb = STRBUF_INIT;
	bool sep = false;

	for (; *msg && sb.len < 48; msg++) {
		if (isalnum((unsigned char)*msg)) {
			if (sep && sb.len)
				strbuf_addch(&sb, '_');
			strbuf_addch(&sb, tolower((unsigned char)*msg));
			sep = false;
		} else {
			sep = true;
		}
	}
	if (sb.len == 0)
		strbuf_addstr(&sb, "migration");
	return strbuf_detach(&sb);
}

/* A placeholder for a parameter of this kind, in flow YAML. */
static const char *
placeholder(enum param_kind kind)
{
	switch (kind) {
	case PARAM_IDENTIFIER:
		return "NAME";
	case PARAM_TABLE:
		return "TABLE";
	case PARAM_NEW_TABLE:
		return "NEW_TABLE";
	case PARAM_COLUMN:
		return "COLUMN";
	case PARAM_NEW_COLUMN:
		return "NEW_COLUMN";
	case PARAM_COLUMNS:
		return "[COLUMN]";
	case PARAM_COLUMN_DEF:
		return "{name: NEW_COLUMN, type: TYPE}";
	case PARAM_COLUMN_DEFS:
		return "[{name: id, type: bigint, primary_key: true}]";
	case PARAM_TYPE:
		return "TYPE";
	case PARAM_EXPR:
		return "\"SQL EXPRESSION\"";
	case PARAM_ASSIGNMENTS:
		return "{COLUMN: \"SQL EXPRESSION\"}";
	case PARAM_STRING:
		return "\"TEXT\"";
	case PARAM_BOOL:
		return "true";
	case PARAM_PHASE:
		return "expand";
	case PARAM_SQL:
		return "\"SQL\"";
	case PARAM_VALUE:
		return "VALUE";
	}
	return "VALUE";
}

/* "#   - op: {param: PLACEHOLDER, ...}   # summary" for every operation. */
static void
add_examples(const struct catalog *cat, struct strbuf *out)
{
	size_t i, k, n;

	for (i = 0; i < cat->n_ops; i++) {
		const struct catalog_op *op = &cat->ops[i];
		bool any_sql = false;

		strbuf_addf(out, "#   # %s\n#   - %s: {", op->summary, op->name);
		for (k = n = 0; k < op->n_params; k++)
			if (op->params[k].required)
				strbuf_addf(out, "%s%s: %s", n++ ? ", " : "", op->params[k].name,
					    placeholder(op->params[k].kind));
		/* sql names no statement as required: show one, for every backend. */
		for (k = 0; k < op->n_params && !any_sql; k++)
			if (op->params[k].kind == PARAM_SQL && !op->params[k].required) {
				strbuf_addf(out, "%s%s: %s", n++ ? ", " : "", op->params[k].name,
					    placeholder(PARAM_SQL));
				any_sql = true;
			}
		strbuf_addstr(out, "}\n");
	}
}

/* text as a YAML double-quoted scalar. */
static void
add_yaml_quoted(struct strbuf *out, const char *text)
{
	strbuf_addch(out, '"');
	for (; *text; text++) {
		unsigned char ch = (unsigned char)*text;

		if (ch == '"' || ch == '\\')
			strbuf_addf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			strbuf_addf(out, "\\x%02x", ch);
		else
			strbuf_addch(out, (char)ch);
	}
	strbuf_addch(out, '"');
}

int
cmd_revision(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "autogenerate", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct strbuf sb = STRBUF_INIT;
	const char *msg = NULL;
	char *slug, *path, *text;
	int c, rc, fd;
	FILE *f;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:m:", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			msg = optarg;
			break;
		case 'a':
			return err_setf(&cli->err, DBPHASE_EUNSUPPORTED,
					"--autogenerate is not supported: dbphase plans from the "
					"operations you write, not from a diff of models; describe the "
					"change in the new file instead");
		case ':':
			return cli_usage_error(cli, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (msg == NULL || optind < argc)
		return cli_usage_error(cli, "revision needs -m MESSAGE");
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (!cli->have_cat) {
		if ((rc = catalog_load(&cli->cat, cli->repo.phases_dir, &cli->err)) < 0)
			return rc;
		cli->have_cat = true;
	}
	slug = slugify(msg);
	path = xasprintf("%s/versions/%03lld_%s.yaml", cli->repo.dir,
			 (long long)repo_latest(&cli->repo) + 1, slug);
	free(slug);
	cli_defer_signals(cli);	/* a signal must not leave half a file */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		rc = err_setf(&cli->err, DBPHASE_EIO, "cannot create '%s': %s", path, strerror(errno));
		free(path);
		return rc;
	}
	f = fdopen(fd, "w");
	strbuf_addstr(&sb, "description: ");
	add_yaml_quoted(&sb, msg);
	strbuf_addstr(&sb, "\n"
		      "# Write this migration's operations in the list below; the planner puts\n"
		      "# each in expand, migrate or contract (dbphase plan shows where and why).\n"
		      "# Until the list has an operation, dbphase refuses to load the repository,\n"
		      "# so that nothing is applied by mistake.  doc/migration-format.md has\n"
		      "# every field; one example of each operation:\n"
		      "#\n"
		      "# operations:\n");
	add_examples(&cli->cat, &sb);
	strbuf_addstr(&sb, "operations: []\n");
	text = strbuf_detach(&sb);
	fputs(text, f);
	free(text);
	if (fclose(f) != 0) {
		rc = err_setf(&cli->err, DBPHASE_EIO, "cannot write '%s': %s", path, strerror(errno));
		free(path);
		return rc;
	}
	if (cli->format == CLI_JSON) {
		json_t *o = json_object();

		json_object_set_new(o, "created", json_string(path));
		cli_print_json(o);
	} else {
		printf("created %s\n", path);
	}
	free(path);
	return 0;
}

/*
 * cli/cmd_revision.c - `dbphase revision -m MESSAGE`: the next migration
 * file, named NNN_slug.yaml after the message, with a skeleton to fill in.
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

int
cmd_revision(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "autogenerate", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
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
	text = xasprintf("description: %s\n"
			 "operations:\n"
			 "  # The planner puts each operation in expand, migrate or contract.\n"
			 "  # See doc/migration-format.md for every operation.\n"
			 "  - sql:\n"
			 "      phase: expand\n"
			 "      all: SELECT 1\n", msg);
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

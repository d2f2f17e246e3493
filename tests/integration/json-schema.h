/*
 * tests/integration/json-schema.h - what test-cli.c and test-clients.c
 * share to check `status --format json` against schemas/status.schema.json:
 * a validator for the part of JSON Schema that file uses.  Header-only,
 * static inline.
 */
#ifndef DBPHASE_TESTS_JSON_SCHEMA_H
#define DBPHASE_TESTS_JSON_SCHEMA_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "testlib.h"

/*
 * A validator for the part of JSON Schema that schemas/status.schema.json
 * uses; a keyword it does not know fails the test rather than pass silently.
 */
static inline bool
type_is(const json_t *v, const char *type)
{
	if (strcmp(type, "object") == 0)
		return json_is_object(v);
	if (strcmp(type, "array") == 0)
		return json_is_array(v);
	if (strcmp(type, "string") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v);
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(type, "null") == 0)
		return json_is_null(v);
	cr_assert_fail("schema uses unknown type '%s'", type);
	return false;
}

static inline void
validate(const json_t *root, const json_t *schema, const json_t *v, const char *path)
{
	const char *key;
	json_t *kw;

	json_object_foreach((json_t *)schema, key, kw) {
		if (strcmp(key, "$ref") == 0) {
			const char *ref = json_string_value(kw);

			cr_assert(strncmp(ref, "#/$defs/", 8) == 0, "unsupported $ref %s", ref);
			validate(root, json_object_get(json_object_get(root, "$defs"), ref + 8), v, path);
		} else if (strcmp(key, "type") == 0) {
			bool ok = false;
			size_t i;

			if (json_is_string(kw))
				ok = type_is(v, json_string_value(kw));
			for (i = 0; json_is_array(kw) && i < json_array_size(kw); i++)
				ok = ok || type_is(v, json_string_value(json_array_get(kw, i)));
			cr_assert(ok, "%s: wrong type", path);
		} else if (strcmp(key, "enum") == 0) {
			bool ok = false;
			size_t i;

			for (i = 0; i < json_array_size(kw); i++)
				ok = ok || json_equal(json_array_get(kw, i), (json_t *)v);
			cr_assert(ok, "%s: not one of the schema's values", path);
		} else if (strcmp(key, "required") == 0 && json_is_object(v)) {
			size_t i;

			for (i = 0; i < json_array_size(kw); i++) {
				const char *name = json_string_value(json_array_get(kw, i));

				cr_assert(json_object_get(v, name) != NULL, "%s: '%s' is missing", path,
					  name);
			}
		} else if (strcmp(key, "properties") == 0 && json_is_object(v)) {
			const char *name;
			json_t *sub;

			json_object_foreach(kw, name, sub) {
				json_t *child = json_object_get(v, name);
				char *p = xasprintf("%s.%s", path, name);

				if (child)
					validate(root, sub, child, p);
				free(p);
			}
		} else if (strcmp(key, "additionalProperties") == 0 && json_is_object(v)) {
			const char *name;
			json_t *val;

			cr_assert(json_is_false(kw), "only additionalProperties: false is supported");
			json_object_foreach((json_t *)v, name, val)
				cr_assert(json_object_get(json_object_get(schema, "properties"), name),
					  "%s: '%s' is not in the schema", path, name);
		} else if (strcmp(key, "items") == 0 && json_is_array(v)) {
			size_t i;

			for (i = 0; i < json_array_size(v); i++) {
				char *p = xasprintf("%s[%zu]", path, i);

				validate(root, kw, json_array_get(v, i), p);
				free(p);
			}
		} else if (strcmp(key, "minItems") == 0 && json_is_array(v)) {
			cr_assert_geq(json_array_size(v), (size_t)json_integer_value(kw), "%s", path);
		} else if (strcmp(key, "minimum") == 0 && json_is_number(v)) {
			cr_assert_geq(json_number_value(v), json_number_value(kw), "%s", path);
		} else if (strcmp(key, "pattern") == 0 && json_is_string(v)) {
			regex_t re;

			cr_assert_eq(regcomp(&re, json_string_value(kw), REG_EXTENDED | REG_NOSUB), 0);
			cr_assert_eq(regexec(&re, json_string_value(v), 0, NULL, 0), 0,
				     "%s: '%s' does not match %s", path, json_string_value(v),
				     json_string_value(kw));
			regfree(&re);
		} else if (strcmp(key, "description") != 0 && strcmp(key, "title") != 0 &&
			   strcmp(key, "$schema") != 0 && strcmp(key, "$id") != 0 &&
			   strcmp(key, "$defs") != 0 && strcmp(key, "properties") != 0 &&
			   strcmp(key, "additionalProperties") != 0 && strcmp(key, "items") != 0 &&
			   strcmp(key, "minItems") != 0 && strcmp(key, "minimum") != 0 &&
			   strcmp(key, "pattern") != 0 && strcmp(key, "required") != 0) {
			cr_assert_fail("the test's validator does not know keyword '%s'", key);
		}
	}
}

/* schemas/status.schema.json, loaded (owned); fails the test if it cannot be. */
static inline json_t *
status_schema_load(void)
{
	const char *root = getenv("DBPHASE_SOURCE_ROOT");
	char *path = xasprintf("%s/schemas/status.schema.json", root && *root ? root : "..");
	json_error_t je;
	json_t *schema = json_load_file(path, 0, &je);

	cr_assert_not_null(schema, "%s:%d: %s", path, je.line, je.text);
	free(path);
	return schema;
}

#endif

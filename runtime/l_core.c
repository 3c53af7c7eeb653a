/*
 * l_core.c — Lua module `atom.core`: the codecs and system facts the Lua
 * half needs and Lua itself lacks. Every codec here wraps a library
 * (libyaml, OpenSSL, zlib); nothing is parsed by hand.
 *
 *   core.yaml_decode(text, filename) -> docs, lines
 *       docs: array of decoded documents (empty ones skipped); lines: the
 *       1-based line where each kept document starts. Errors name
 *       filename:line:column. Empty sequences carry core.array_mt so JSON
 *       encoding can tell them from empty mappings; null is cjson.null.
 *   core.array_mt                       metatable marking a table as a list
 *   core.json_empty_arrays(t, sentinel) -> nil | list | false
 *       atom.json's walk for the empty lists cjson cannot encode (below)
 *   core.raw_copy(v) -> copy | nil
 *       the script loader's metatable-free copy of a script's data (below)
 *   core.base64_encode(s), core.base64_decode(s) -> s | nil, err
 *   core.sha256_hex(s), core.gzip(s), core.gunzip(s) -> s | nil, err
 *   core.monotonic(), core.wall(), core.sleep(seconds)
 *   core.glob(pattern) -> sorted array of paths
 *   core.isatty(fd), core.hostname(), core.username(), core.pid()
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include <zlib.h>

#include "bindings.h"
#include "clock.h"

#define CORE_ARRAY_MT "atom.array"
#define YAML_MAX_DEPTH 512
#define YAML_MAX_NODES 20000000L
#define GUNZIP_MAX ((size_t)1 << 30)

/* Pushes a zeroed userdata whose __gc (gc) frees what C allocates into it
 * during one call, so a Lua error raised while results are built (out of
 * memory, a bad document) cannot leak it. The metatable is made once per
 * state under tname, not once per call. */
static void *core_box(lua_State *L, size_t size, const char *tname, lua_CFunction gc)
{
    void *p = lua_newuserdatauv(L, size, 0);
    memset(p, 0, size);
    if (luaL_newmetatable(L, tname)) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return p;
}

/* ---- YAML ------------------------------------------------------------ */

/* The parser and the current document live in a userdata so that a Lua
 * error raised mid-conversion (out of memory) still frees them via __gc. */
typedef struct yaml_box {
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_event_t event;
    int parser_ready, doc_ready, event_ready;
    long nodes;
    /* Where scalars tagged !!str or "!" begin (byte offsets, increasing), for the document
     * loader's path: its nodes carry the str tag whether it was written or not. */
    size_t *str_marks, nstr, capstr;
} yaml_box;

static void yaml_box_free(yaml_box *b)
{
    if (b->event_ready) {
        yaml_event_delete(&b->event);
        b->event_ready = 0;
    }
    if (b->doc_ready) {
        yaml_document_delete(&b->doc);
        b->doc_ready = 0;
    }
    if (b->parser_ready) {
        yaml_parser_delete(&b->parser);
        b->parser_ready = 0;
    }
    free(b->str_marks);
    b->str_marks = NULL;
    b->nstr = b->capstr = 0;
}

static int yaml_box_gc(lua_State *L)
{
    yaml_box_free(lua_touserdata(L, 1));
    return 0;
}

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* YAML 1.1 as Kubernetes reads it (go-yaml v2): bools include yes/no/on/off. */
static const char *const yaml_true[] = {"true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES",
                                        "on", "On", "ON", NULL};
static const char *const yaml_false[] = {"false", "False", "FALSE", "n", "N", "no", "No", "NO",
                                         "off", "Off", "OFF", NULL};
static const char *const yaml_null[] = {"", "~", "null", "Null", "NULL", NULL};

/* A plain scalar whose text reads as null (a tag may still make it text): as a mapping
 * key, kubectl refuses it. */
static int yaml_plain_null(yaml_scalar_style_t style, const yaml_char_t *value)
{
    return style == YAML_PLAIN_SCALAR_STYLE && is_one_of((const char *)value, yaml_null);
}

/* s without its underscores (digit separators: 1_000) into out; 0 when it does not fit,
 * which no number YAML means does. */
static int strip_underscores(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '_')
            continue;
        if (n + 1 >= cap)
            return 0;
        out[n++] = *p;
    }
    out[n] = '\0';
    return 1;
}

static int push_int(lua_State *L, const char *s)
{
    char clean[64];
    if (!strip_underscores(s, clean, sizeof clean))
        return 0;
    const char *digits = clean + (clean[0] == '-' || clean[0] == '+');
    if (*digits < '0' || *digits > '9')
        return 0;
    int base = 10;
    const char *start = clean;
    char buf[64];
    if (digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'b')) {
        base = digits[1] == 'o' ? 8 : 2;
        snprintf(buf, sizeof buf, "%.*s%s", (int)(digits - clean), clean, digits + 2);
        start = buf;
    } else if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        base = 16;
    } else if (digits[0] == '0' && digits[1] != '\0') {
        base = 8;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(start, &end, base);
    if (*end != '\0')
        return 0;
    if (errno == ERANGE) {
        lua_pushnumber(L, strtod(start, NULL));
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static int push_float(lua_State *L, const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (strcasecmp(p, ".inf") == 0) {
        lua_pushnumber(L, *s == '-' ? -HUGE_VAL : HUGE_VAL);
        return 1;
    }
    if (strcasecmp(s, ".nan") == 0) {
        lua_pushnumber(L, NAN);
        return 1;
    }
    /* Only decimal forms: strtod also takes "inf", "nan" and hex floats. */
    int digits = 0, dot = 0;
    for (const char *q = p; *q && *q != 'e' && *q != 'E'; q++) {
        if (*q >= '0' && *q <= '9')
            digits++;
        else if (*q == '.' && !dot)
            dot = 1;
        else if (*q != '_')
            return 0;
    }
    if (!digits)
        return 0;
    /* Underscores separate digits (1_0.5 is 10.5, as kubectl reads it); strtod stops
     * at them. */
    char clean[64];
    const char *num = s;
    if (strchr(s, '_')) {
        if (!strip_underscores(s, clean, sizeof clean))
            return 0;
        num = clean;
    }
    char *end = NULL;
    double v = strtod(num, &end);
    if (*end != '\0')
        return 0;
    lua_pushnumber(L, v);
    return 1;
}

/* Whether a written tag makes a scalar text: !!str, or the non-specific "!" (the YAML
 * spec resolves `! 16` as a string, and so does kubectl: it sends "16"). */
static int yaml_text_tag(const char *tag)
{
    return tag != NULL && (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0);
}

/* explicit_tag: the document wrote a tag. No tag reads as the default, which is the str
 * tag itself: only the flag tells `!!str 12` (text) from `12`. */
static void push_scalar_text(lua_State *L, const char *s, size_t len, int plain, const char *tag,
                             int explicit_tag)
{
    if (explicit_tag && yaml_text_tag(tag)) {
        lua_pushlstring(L, s, len);
        return;
    }
    if (tag == NULL || strcmp(tag, "!") == 0)
        tag = YAML_DEFAULT_SCALAR_TAG;
    /* Most plain scalars are names and other text: only these first bytes can
     * start a null, a bool or a number. Not '_': kubectl reads _5 as text, though
     * underscores anywhere after the first character are dropped (1_000 is 1000). */
    if ((plain || explicit_tag) && (explicit_tag || strchr("~nNtTyYoOfF0123456789+-.", s[0]))) {
        if (is_one_of(s, yaml_null) && (plain || strcmp(tag, YAML_NULL_TAG) == 0)) {
            lua_pushlightuserdata(L, NULL); /* cjson.null */
            return;
        }
        if (is_one_of(s, yaml_true)) {
            lua_pushboolean(L, 1);
            return;
        }
        if (is_one_of(s, yaml_false)) {
            lua_pushboolean(L, 0);
            return;
        }
        if (push_int(L, s) || push_float(L, s))
            return;
    }
    lua_pushlstring(L, s, len);
}

static int yaml_str_marked(const yaml_box *b, size_t index)
{
    size_t lo = 0, hi = b->nstr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->str_marks[mid] < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->nstr && b->str_marks[lo] == index;
}

static void push_scalar(lua_State *L, const yaml_box *b, yaml_node_t *node)
{
    const char *tag = (const char *)node->tag;
    int explicit_tag = (tag != NULL && strcmp(tag, YAML_DEFAULT_SCALAR_TAG) != 0) ||
                       yaml_str_marked(b, node->start_mark.index);
    push_scalar_text(L, (const char *)node->data.scalar.value, node->data.scalar.length,
                     node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, tag, explicit_tag);
}

/* Notes where scalars tagged !!str or "!" begin, for the loader's path (see yaml_box). Best
 * effort: on a parse error or out of memory it stops, and the loader reports errors. */
static void yaml_collect_str_tags(yaml_box *b, const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&p))
        return;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (yaml_parser_parse(&p, &ev)) {
        int end = ev.type == YAML_STREAM_END_EVENT;
        const char *tag = ev.type == YAML_SCALAR_EVENT ? (const char *)ev.data.scalar.tag : NULL;
        if (yaml_text_tag(tag)) {
            if (b->nstr == b->capstr) {
                size_t cap = b->capstr ? b->capstr * 2 : 16;
                size_t *m = realloc(b->str_marks, cap * sizeof *m);
                if (m == NULL)
                    end = 1;
                else {
                    b->str_marks = m;
                    b->capstr = cap;
                }
            }
            if (b->nstr < b->capstr)
                b->str_marks[b->nstr++] = ev.start_mark.index;
        }
        yaml_event_delete(&ev);
        if (end)
            break;
    }
    yaml_parser_delete(&p);
}

static void yaml_push_node(lua_State *L, yaml_box *b, yaml_node_t *node, int depth,
                           const char *filename);

static void yaml_merge_into(lua_State *L, yaml_box *b, yaml_node_t *src, int depth,
                            const char *filename)
{
    /* The target table is on top. Keys already present win over merged ones. */
    if (src->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = src->data.sequence.items.start;
             it < src->data.sequence.items.top; it++)
            yaml_merge_into(L, b, yaml_document_get_node(&b->doc, *it), depth + 1, filename);
        return;
    }
    if (src->type != YAML_MAPPING_NODE)
        luaL_error(L, "%s:%d:%d: merge key '<<' needs a mapping", filename,
                   (int)src->start_mark.line + 1, (int)src->start_mark.column + 1);
    yaml_push_node(L, b, src, depth + 1, filename);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, -5) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        } else {
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
}

static void yaml_push_node(lua_State *L, yaml_box *b, yaml_node_t *node, int depth,
                           const char *filename)
{
    if (node == NULL) {
        lua_pushlightuserdata(L, NULL);
        return;
    }
    if (depth > YAML_MAX_DEPTH || ++b->nodes > YAML_MAX_NODES)
        luaL_error(L, "%s:%d:%d: document nests too deeply or expands too far (aliases?)",
                   filename, (int)node->start_mark.line + 1, (int)node->start_mark.column + 1);
    luaL_checkstack(L, 8, "YAML nesting");
    switch (node->type) {
    case YAML_SCALAR_NODE:
        push_scalar(L, b, node);
        break;
    case YAML_SEQUENCE_NODE: {
        yaml_node_item_t *start = node->data.sequence.items.start;
        yaml_node_item_t *top = node->data.sequence.items.top;
        lua_createtable(L, (int)(top - start), 0);
        if (top == start) {
            luaL_getmetatable(L, CORE_ARRAY_MT);
            lua_setmetatable(L, -2);
        }
        lua_Integer i = 1;
        for (yaml_node_item_t *it = start; it < top; it++) {
            yaml_push_node(L, b, yaml_document_get_node(&b->doc, *it), depth + 1, filename);
            lua_rawseti(L, -2, i++);
        }
        break;
    }
    case YAML_MAPPING_NODE: {
        yaml_node_pair_t *start = node->data.mapping.pairs.start;
        yaml_node_pair_t *top = node->data.mapping.pairs.top;
        lua_createtable(L, 0, (int)(top - start));
        int merges = 0;
        for (yaml_node_pair_t *p = start; p < top; p++) {
            yaml_node_t *k = yaml_document_get_node(&b->doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE &&
                k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                strcmp((const char *)k->data.scalar.value, "<<") == 0) {
                merges = 1;
                continue;
            }
            if (k == NULL || k->type != YAML_SCALAR_NODE)
                luaL_error(L, "%s:%d:%d: mapping keys must be scalars", filename,
                           (int)(k ? k->start_mark.line : node->start_mark.line) + 1,
                           (int)(k ? k->start_mark.column : node->start_mark.column) + 1);
            /* kubectl refuses a null key (JSON has none) rather than guess its text. */
            if (yaml_plain_null(k->data.scalar.style, k->data.scalar.value) &&
                !yaml_str_marked(b, k->start_mark.index))
                luaL_error(L, "%s:%d:%d: a mapping key is null (%s); quote it if it is text",
                           filename, (int)k->start_mark.line + 1, (int)k->start_mark.column + 1,
                           k->data.scalar.length ? (const char *)k->data.scalar.value : "empty");
            /* JSON keys are strings: `80: x` and `true: x` keep their text. */
            lua_pushlstring(L, (const char *)k->data.scalar.value, k->data.scalar.length);
            yaml_push_node(L, b, yaml_document_get_node(&b->doc, p->value), depth + 1, filename);
            lua_rawset(L, -3);
        }
        if (merges) {
            for (yaml_node_pair_t *p = start; p < top; p++) {
                yaml_node_t *k = yaml_document_get_node(&b->doc, p->key);
                if (k && k->type == YAML_SCALAR_NODE &&
                    strcmp((const char *)k->data.scalar.value, "<<") == 0)
                    yaml_merge_into(L, b, yaml_document_get_node(&b->doc, p->value), depth,
                                    filename);
            }
        }
        break;
    }
    default:
        lua_pushlightuserdata(L, NULL);
    }
}

/* The common case without libyaml's document tree: its loader allocates a
 * node, a copy of the default tag and an item stack per node, which cost as
 * much as the parse itself. This path reads the parser's events and builds
 * the same tables (same sizes, same insertion order, so the same key order
 * for cjson). Whatever it does not handle exactly as yaml_push_node does
 * (anchors, aliases, merge keys, non-scalar keys, too deep or too many
 * nodes, a parse error) makes it give up, returning 0, and the caller starts
 * over with the loader, so odd documents get the loader's results and
 * errors unchanged. */
static int yaml_next_event(yaml_box *b)
{
    if (b->event_ready) {
        yaml_event_delete(&b->event);
        b->event_ready = 0;
    }
    if (!yaml_parser_parse(&b->parser, &b->event))
        return 0;
    b->event_ready = 1;
    return 1;
}

/* Pushes the node whose first event is the current one; consumes its events. */
static int yaml_fast_node(lua_State *L, yaml_box *b, int depth)
{
    yaml_event_t *ev = &b->event;
    if (depth > YAML_MAX_DEPTH || ++b->nodes > YAML_MAX_NODES || !lua_checkstack(L, 8))
        return 0;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor)
            return 0;
        push_scalar_text(L, (const char *)ev->data.scalar.value, ev->data.scalar.length,
                         ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE,
                         (const char *)ev->data.scalar.tag, ev->data.scalar.tag != NULL);
        return 1;
    case YAML_SEQUENCE_START_EVENT: {
        if (ev->data.sequence_start.anchor)
            return 0;
        /* Items wait on the Lua stack so the table is made at its final size. */
        int base = lua_gettop(L), n = 0;
        for (;;) {
            if (!yaml_next_event(b))
                return 0;
            if (ev->type == YAML_SEQUENCE_END_EVENT)
                break;
            if (!yaml_fast_node(L, b, depth + 1))
                return 0;
            n++;
        }
        lua_createtable(L, n, 0);
        if (n == 0) {
            luaL_getmetatable(L, CORE_ARRAY_MT);
            lua_setmetatable(L, -2);
        }
        lua_insert(L, base + 1);
        for (int i = n; i >= 1; i--)
            lua_rawseti(L, base + 1, i);
        return 1;
    }
    case YAML_MAPPING_START_EVENT: {
        if (ev->data.mapping_start.anchor)
            return 0;
        int base = lua_gettop(L), n = 0;
        for (;;) {
            if (!yaml_next_event(b))
                return 0;
            if (ev->type == YAML_MAPPING_END_EVENT)
                break;
            /* Merge keys, and null keys (an error), are the loader path's. */
            if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.anchor ||
                strcmp((const char *)ev->data.scalar.value, "<<") == 0 ||
                (!ev->data.scalar.tag && yaml_plain_null(ev->data.scalar.style, ev->data.scalar.value)) ||
                !lua_checkstack(L, 8))
                return 0;
            lua_pushlstring(L, (const char *)ev->data.scalar.value, ev->data.scalar.length);
            if (!yaml_next_event(b) || !yaml_fast_node(L, b, depth + 1))
                return 0;
            n++;
        }
        lua_createtable(L, 0, n);
        int t = lua_gettop(L);
        /* In document order, as the loader's pairs: a repeated key keeps its last value. */
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, base + 1 + 2 * i);
            lua_pushvalue(L, base + 2 + 2 * i);
            lua_rawset(L, t);
        }
        if (n > 0) {
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
        }
        return 1;
    }
    default: /* an alias */
        return 0;
    }
}

static int yaml_fast_decode(lua_State *L, yaml_box *b, int docs, int lines)
{
    lua_Integer n = 0;
    if (!yaml_next_event(b) || b->event.type != YAML_STREAM_START_EVENT)
        return 0;
    for (;;) {
        if (!yaml_next_event(b))
            return 0;
        if (b->event.type == YAML_STREAM_END_EVENT)
            return 1;
        if (b->event.type != YAML_DOCUMENT_START_EVENT || !yaml_next_event(b))
            return 0;
        yaml_event_t *root = &b->event;
        lua_Integer line = (lua_Integer)root->start_mark.line + 1;
        int empty = root->type == YAML_SCALAR_EVENT && root->data.scalar.length == 0 &&
                    root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (empty && root->data.scalar.anchor)
            return 0;
        if (!empty) {
            if (!yaml_fast_node(L, b, 0))
                return 0;
            lua_rawseti(L, docs, ++n);
            lua_pushinteger(L, line);
            lua_rawseti(L, lines, n);
        }
        if (!yaml_next_event(b) || b->event.type != YAML_DOCUMENT_END_EVENT)
            return 0;
    }
}

static int yaml_start(lua_State *L, yaml_box *b, const char *text, size_t len, const char *filename)
{
    if (!yaml_parser_initialize(&b->parser))
        return luaL_error(L, "%s: cannot initialise the YAML parser", filename);
    b->parser_ready = 1;
    yaml_parser_set_input_string(&b->parser, (const unsigned char *)text, len);
    b->nodes = 0;
    return 0;
}

static int l_core_yaml_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *filename = luaL_optstring(L, 2, "<yaml>");

    yaml_box *b = core_box(L, sizeof *b, "atom.core.yaml_box", yaml_box_gc);
    int box = lua_gettop(L);

    yaml_start(L, b, text, len, filename);
    lua_newtable(L); /* docs */
    lua_newtable(L); /* lines */
    if (yaml_fast_decode(L, b, box + 1, box + 2)) {
        yaml_box_free(b);
        return 2;
    }
    yaml_box_free(b);
    lua_settop(L, box);
    yaml_collect_str_tags(b, text, len);
    yaml_start(L, b, text, len, filename);
    lua_newtable(L); /* docs */
    lua_newtable(L); /* lines */
    lua_Integer n = 0;
    for (;;) {
        if (!yaml_parser_load(&b->parser, &b->doc)) {
            char msg[768];
            int n = snprintf(msg, sizeof msg, "%s:%d:%d: %s", filename,
                             (int)b->parser.problem_mark.line + 1,
                             (int)b->parser.problem_mark.column + 1,
                             b->parser.problem ? b->parser.problem : "invalid YAML");
            /* libyaml often notices a problem at the end of the file; where the
             * unfinished construct began is what the user needs to find. */
            if (b->parser.context && n > 0 && (size_t)n < sizeof msg)
                snprintf(msg + n, sizeof msg - (size_t)n, " %s started at line %d:%d",
                         b->parser.context, (int)b->parser.context_mark.line + 1,
                         (int)b->parser.context_mark.column + 1);
            yaml_box_free(b);
            lua_pushnil(L);
            lua_pushstring(L, msg);
            return 2;
        }
        b->doc_ready = 1;
        yaml_node_t *root = yaml_document_get_root_node(&b->doc);
        if (root == NULL) { /* end of stream */
            yaml_document_delete(&b->doc);
            b->doc_ready = 0;
            break;
        }
        int empty = root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
                    root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (!empty) {
            yaml_push_node(L, b, root, 0, filename);
            lua_rawseti(L, box + 1, ++n);
            lua_pushinteger(L, (lua_Integer)root->start_mark.line + 1);
            lua_rawseti(L, box + 2, n);
        }
        yaml_document_delete(&b->doc);
        b->doc_ready = 0;
    }
    yaml_box_free(b);
    return 2;
}

/* ---- data walks for atom.json and the script loader -------------------- */

/* Past this depth the C walks hand the value back to their Lua twins, which
 * keep a seen set and have no depth limit: a value this deep is cyclic (cjson
 * rejects it anyway) or far outside what a manifest looks like, and the C
 * stack stays bounded. */
#define WALK_MAX_DEPTH 1000
/* json_empty_arrays has no seen set (a Lua table per walk would cost what
 * the walk saves), so a shared subtable is walked once per reference, as
 * cjson encodes it; this bound keeps a deliberately exponential DAG, which
 * cjson might reject early for another reason, from being walked in full. */
#define WALK_MAX_TABLES 1000000L

/* getmetatable(v) == array_mt as Lua's getmetatable answers it (a
 * __metatable field stands in for the metatable). array_mt is at index mt. */
static int is_array_mt(lua_State *L, int idx, int mt)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_pushliteral(L, "__metatable");
    if (lua_rawget(L, -2) == LUA_TNIL)
        lua_pop(L, 1);
    else
        lua_remove(L, -2);
    int same = lua_rawequal(L, -1, mt);
    lua_pop(L, 1);
    return same;
}

typedef struct empties_walk {
    int mt, found; /* stack slots: array_mt, the list of finds (nil until the first) */
    lua_Integer n;
    long tables;
} empties_walk;

/* The values (never the keys) of the table at idx, depth first, as json.lua's
 * collect_empty_arrays visits them. Returns 0 when the value is too deep or
 * too large to walk here. */
static int empties_walk_table(lua_State *L, empties_walk *w, int idx, int depth)
{
    if (depth > WALK_MAX_DEPTH || ++w->tables > WALK_MAX_TABLES)
        return 0;
    luaL_checkstack(L, 6, "atom.json nesting");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            int x = lua_gettop(L);
            lua_pushnil(L);
            if (lua_next(L, x) == 0) {
                if (is_array_mt(L, x, w->mt)) {
                    if (w->n == 0) {
                        lua_newtable(L);
                        lua_replace(L, w->found);
                    }
                    lua_pushvalue(L, x);
                    lua_rawseti(L, w->found, ++w->n);
                }
            } else {
                lua_pop(L, 2);
                if (!empties_walk_table(L, w, x, depth + 1))
                    return 0;
            }
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* core.json_empty_arrays(v, sentinel) -> nil | list | false
 * The empty tables carrying array_mt reachable from table v (v itself aside);
 * each gets sentinel at [1] so cjson encodes it as a one-element list the
 * caller turns back into `[]`. nil: none (nothing changed). false: too deep
 * or too large to walk here (nothing changed; the caller walks it itself). */
static int l_core_json_empty_arrays(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    luaL_getmetatable(L, CORE_ARRAY_MT);
    lua_pushnil(L);
    empties_walk w = {.mt = 3, .found = 4, .n = 0, .tables = 0};
    if (!empties_walk_table(L, &w, 1, 1)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (w.n == 0) {
        lua_pushnil(L);
        return 1;
    }
    for (lua_Integer i = 1; i <= w.n; i++) {
        lua_rawgeti(L, 4, i);
        lua_pushvalue(L, 2);
        lua_rawseti(L, -2, 1);
        lua_pop(L, 1);
    }
    lua_settop(L, 4);
    return 1;
}

typedef struct copy_walk {
    int seen, mt; /* stack slots */
} copy_walk;

/* Pushes the raw copy of the value at idx (script.lua's raw_copy). Returns 0,
 * with nothing pushed, when the value nests too deeply to copy here. */
static int raw_copy_value(lua_State *L, copy_walk *c, int idx, int depth)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return 1;
    }
    lua_pushvalue(L, idx);
    if (lua_rawget(L, c->seen) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (depth > WALK_MAX_DEPTH)
        return 0;
    luaL_checkstack(L, 8, "raw_copy nesting");

    /* Sized once from a counting pass: growing a table rehashes it. */
    lua_Unsigned narr = lua_rawlen(L, idx), total = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        total++;
        lua_pop(L, 1);
    }
    lua_Unsigned nrec = total > narr ? total - narr : 0;
    lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr, nrec > INT_MAX ? INT_MAX : (int)nrec);
    int out = lua_gettop(L);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, out);
    lua_rawset(L, c->seen);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int x = lua_gettop(L);
        if (!raw_copy_value(L, c, x - 1, depth + 1))
            return 0;
        if (!raw_copy_value(L, c, x, depth + 1))
            return 0;
        lua_rawset(L, out);
        lua_pop(L, 1);
    }
    if (is_array_mt(L, idx, c->mt)) {
        lua_pushvalue(L, c->mt);
        lua_setmetatable(L, out);
    }
    return 1;
}

/* core.raw_copy(v) -> copy | nil
 * A copy of v made with raw access only: shared subtables and cycles are kept
 * as shared and cyclic, metatables are dropped except array_mt. nil when v
 * nests deeper than this walk goes (the caller copies it in Lua). */
static int l_core_raw_copy(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lua_newtable(L);
    luaL_getmetatable(L, CORE_ARRAY_MT);
    copy_walk c = {.seen = 2, .mt = 3};
    if (!raw_copy_value(L, &c, 1, 1)) {
        lua_pushnil(L);
        return 1;
    }
    return 1;
}

/* ---- base64, sha256, gzip (OpenSSL, zlib) ----------------------------- */

static int l_core_base64_encode(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer buf;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &buf, 4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock(out, s, (int)len);
    luaL_pushresultsize(&buf, (size_t)n);
    return 1;
}

static int l_core_base64_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer clean;
    luaL_buffinit(L, &clean);
    for (size_t i = 0; i < len; i++)
        if (s[i] != '\n' && s[i] != '\r' && s[i] != ' ' && s[i] != '\t')
            luaL_addchar(&clean, s[i]);
    size_t pad_needed = (4 - luaL_bufflen(&clean) % 4) % 4;
    if (pad_needed == 3) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid base64: wrong length");
        return 2;
    }
    for (size_t i = 0; i < pad_needed; i++)
        luaL_addchar(&clean, '=');
    luaL_pushresult(&clean);
    size_t clen;
    const char *c = lua_tolstring(L, -1, &clen);
    size_t padding = 0;
    if (clen >= 1 && c[clen - 1] == '=')
        padding++;
    if (clen >= 2 && c[clen - 2] == '=')
        padding++;
    luaL_Buffer out;
    unsigned char *o = (unsigned char *)luaL_buffinitsize(L, &out, clen / 4 * 3 + 1);
    int n = EVP_DecodeBlock(o, (const unsigned char *)c, (int)clen);
    if (n < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid base64");
        return 2;
    }
    luaL_pushresultsize(&out, (size_t)n - padding);
    return 1;
}

static int l_core_sha256_hex(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL))
        return luaL_error(L, "sha256 failed");
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    lua_pushlstring(L, hex, 2 * mdlen);
    return 1;
}

static int l_core_gzip(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    z_stream z;
    memset(&z, 0, sizeof z);
    /* The output buffer is a userdata, allocated before zlib state exists, so
     * no Lua call can throw while zlib holds memory. */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return luaL_error(L, "gzip: deflateInit failed");
    uLong bound = deflateBound(&z, (uLong)len) + 32;
    deflateEnd(&z);
    unsigned char *out = lua_newuserdatauv(L, bound, 0);
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return luaL_error(L, "gzip: deflateInit failed");
    z.next_in = (unsigned char *)s;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    size_t produced = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END)
        return luaL_error(L, "gzip: deflate failed (%d)", rc);
    lua_pushlstring(L, (const char *)out, produced);
    return 1;
}

typedef struct owned_buf {
    unsigned char *p;
} owned_buf;

static int owned_buf_gc(lua_State *L)
{
    owned_buf *b = lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    return 0;
}

static int l_core_gunzip(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    owned_buf *ob = core_box(L, sizeof *ob, "atom.core.owned_buf", owned_buf_gc);

    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return luaL_error(L, "gunzip: inflateInit failed");
    size_t cap = len * 4 + 1024, used = 0;
    const char *problem = NULL;
    int rc = Z_OK;
    z.next_in = (unsigned char *)s;
    z.avail_in = (uInt)len;
    while (rc != Z_STREAM_END) {
        if (used == cap || ob->p == NULL) {
            if (ob->p)
                cap *= 2;
            if (cap > GUNZIP_MAX) {
                problem = "output larger than 1 GiB";
                break;
            }
            unsigned char *np = realloc(ob->p, cap);
            if (np == NULL) {
                problem = "out of memory";
                break;
            }
            ob->p = np;
        }
        z.next_out = ob->p + used;
        z.avail_out = (uInt)(cap - used);
        rc = inflate(&z, Z_NO_FLUSH);
        used = z.total_out;
        if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && z.avail_out == 0)) {
            problem = z.msg ? z.msg : "corrupt data";
            break;
        }
    }
    inflateEnd(&z);
    if (problem) {
        lua_pushnil(L);
        lua_pushfstring(L, "gunzip: %s", problem);
        return 2;
    }
    lua_pushlstring(L, (const char *)ob->p, used);
    return 1;
}

/* ---- system facts ----------------------------------------------------- */

static int l_core_monotonic(lua_State *L)
{
    lua_pushnumber(L, atom_monotonic());
    return 1;
}

static int l_core_wall(lua_State *L)
{
    lua_pushnumber(L, atom_wall());
    return 1;
}

static int l_core_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (s > 0) {
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
    }
    return 0;
}

static int glob_box_gc(lua_State *L)
{
    glob_t *g = lua_touserdata(L, 1);
    globfree(g);
    memset(g, 0, sizeof *g);
    return 0;
}

static int l_core_glob(lua_State *L)
{
    const char *pattern = luaL_checkstring(L, 1);
    glob_t *g = core_box(L, sizeof *g, "atom.core.glob_box", glob_box_gc);
    int rc = glob(pattern, GLOB_ERR, NULL, g);
    if (rc != 0 && rc != GLOB_NOMATCH) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot expand %s", pattern);
        return 2;
    }
    lua_createtable(L, (int)g->gl_pathc, 0);
    for (size_t i = 0; i < g->gl_pathc; i++) {
        lua_pushstring(L, g->gl_pathv[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_core_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
    return 1;
}

static int l_core_hostname(lua_State *L)
{
    char name[256];
    if (gethostname(name, sizeof name) != 0)
        strcpy(name, "unknown");
    name[sizeof name - 1] = '\0';
    lua_pushstring(L, name);
    return 1;
}

static int l_core_username(lua_State *L)
{
    const char *u = getenv("USER");
    struct passwd *pw = (u && *u) ? NULL : getpwuid(getuid());
    lua_pushstring(L, (u && *u) ? u : (pw ? pw->pw_name : "unknown"));
    return 1;
}

static int l_core_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

int luaopen_atom_core(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"yaml_decode", l_core_yaml_decode},
        {"json_empty_arrays", l_core_json_empty_arrays},
        {"raw_copy", l_core_raw_copy},
        {"base64_encode", l_core_base64_encode},
        {"base64_decode", l_core_base64_decode},
        {"sha256_hex", l_core_sha256_hex},
        {"gzip", l_core_gzip},
        {"gunzip", l_core_gunzip},
        {"monotonic", l_core_monotonic},
        {"wall", l_core_wall},
        {"sleep", l_core_sleep},
        {"glob", l_core_glob},
        {"isatty", l_core_isatty},
        {"hostname", l_core_hostname},
        {"username", l_core_username},
        {"pid", l_core_pid},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    luaL_newmetatable(L, CORE_ARRAY_MT);
    lua_pushstring(L, "array");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, -2, "array_mt");
    return 1;
}

/*
 * test_fsm.c — the transition table, checked cell by cell against the
 * design's table (DESIGN.md "The state machine"), and the driver's rules
 * (answers outside the table never obeyed, before-hook vetoes, conflicts
 * re-decided) on a scripted Lua engine.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "fsm.h"
#include "lua_host.h"

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            failures++;                                    \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
        }                                                  \
    } while (0)

/* The design's "leaves to" column, written out by name so that a typo in
 * fsm.c's enum-indexed table cannot hide behind the same typo here. */
static const struct {
    const char *from;
    const char *to[4];
} design[] = {
    {"", {"Pending"}},
    {"Pending", {"Updating", "Error"}},
    {"Updating", {"Running", "Deadline", "Error", "Cancelled"}},
    {"Running", {"Pending"}},
    {"Cancelled", {"Rollback", "Failure"}},
    {"Deadline", {"Rollback", "Failure", "Updating"}},
    {"Error", {"Rollback", "Failure", "Updating"}},
    {"Rollback", {"Reverted", "Failure"}},
    {"Reverted", {"Pending"}},
    {"Failure", {"Pending"}},
};

static bool design_allows(const char *from, const char *to)
{
    for (size_t i = 0; i < sizeof design / sizeof design[0]; i++) {
        if (strcmp(design[i].from, from) != 0)
            continue;
        for (int j = 0; j < 4 && design[i].to[j]; j++)
            if (strcmp(design[i].to[j], to) == 0)
                return true;
        return false;
    }
    return false;
}

static void test_table(void)
{
    int allowed = 0;
    for (int f = 0; f < FSM_STATE_COUNT; f++) {
        for (int t = 0; t < FSM_STATE_COUNT; t++) {
            const char *from = fsm_state_name((fsm_state)f), *to = fsm_state_name((fsm_state)t);
            bool want = design_allows(from, to);
            CHECK(fsm_allowed((fsm_state)f, (fsm_state)t) == want, "'%s' => '%s': want %s", from,
                  to, want ? "allowed" : "forbidden");
            allowed += want;
        }
    }
    CHECK(allowed == 20, "the design has 20 transitions, counted %d", allowed);
    CHECK(!fsm_allowed(FSM_STATE_COUNT, FSM_PENDING), "out-of-range state must be forbidden");
}

static void test_names_and_terminal(void)
{
    static const char *const names[] = {"Pending", "Updating", "Running", "Cancelled", "Deadline",
                                        "Error", "Rollback", "Reverted", "Failure"};
    for (size_t i = 0; i < 9; i++) {
        fsm_state s;
        CHECK(fsm_state_parse(names[i], &s, NULL) == ATOM_OK, "parse %s", names[i]);
        CHECK(strcmp(fsm_state_name(s), names[i]) == 0, "round trip of %s", names[i]);
        bool term = strcmp(names[i], "Running") == 0 || strcmp(names[i], "Reverted") == 0 ||
                    strcmp(names[i], "Failure") == 0;
        CHECK(fsm_terminal(s) == term, "%s terminal should be %d", names[i], term);
    }
    atom_error err;
    fsm_state s;
    CHECK(fsm_state_parse("running", &s, &err) == ATOM_EINVAL, "names are case-sensitive");
    CHECK(strstr(err.message, "running") != NULL, "error names the state: %s", err.message);
    CHECK(fsm_fallback(FSM_UPDATING) == FSM_ERROR, "Updating falls back to Error");
    CHECK(fsm_fallback(FSM_ROLLBACK) == FSM_FAILURE, "Rollback falls back to Failure");
    CHECK(fsm_fallback(FSM_CANCELLED) == FSM_FAILURE, "Cancelled falls back to Failure");
}

/* A scripted engine: `plan[state]` is what step answers; `veto[state]` makes
 * the before-hook of that state fail; `conflicts` makes the first N writes
 * conflict. `log` collects "from>to:why" for each recorded transition. */
static const char *engine_src =
    "local plan, veto, conflicts = ...\n"
    "local e = { cur = '', log = {}, after = {} }\n"
    "function e:state() return self.cur end\n"
    "function e:step(s)\n"
    "  local a = plan[s]\n"
    "  if a == 'raise' then error('boom in ' .. s) end\n"
    "  if a then plan[s] = plan[s .. '+'] ; return a, 'because' end\n"
    "end\n"
    "function e:hook(phase, from, to, why)\n"
    "  if phase == 'before' and veto[to] then return nil, 'vetoed ' .. to end\n"
    "  if phase == 'after' then self.after[#self.after + 1] = to end\n"
    "  return true\n"
    "end\n"
    "function e:transition(from, to, why)\n"
    "  if conflicts > 0 then conflicts = conflicts - 1; return 'conflict' end\n"
    "  self.log[#self.log + 1] = from .. '>' .. to .. ':' .. why; self.cur = to; return 'ok'\n"
    "end\n"
    "function e:announce() end\n"
    "return e\n";

/* Runs the scripted engine; returns the joined log ("a>b:why|..."). */
static int run_engine(lh_host *host, const char *plan_lua, const char *veto_lua, int conflicts,
                      fsm_state *final, char *out, size_t out_size, atom_error *err)
{
    lua_State *L = lh_state(host);
    int top = lua_gettop(L);
    luaL_loadstring(L, engine_src);
    luaL_dostring(L, plan_lua);
    luaL_dostring(L, veto_lua);
    lua_pushinteger(L, conflicts);
    if (lh_pcall(host, 3, 1, err) != ATOM_OK)
        return -1;
    int rc = fsm_drive(host, -1, final, err);
    lua_getfield(L, -1, "log");
    out[0] = 0;
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
        size_t len = strlen(out);
        snprintf(out + len, out_size - len, "%s%s", i > 1 ? "|" : "", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return rc;
}

static void test_driver(void)
{
    atom_error err;
    lh_host *host = lh_new(&err);
    CHECK(host != NULL, "lh_new: %s", err.message);
    if (!host)
        return;
    char log[4096];
    fsm_state final;

    /* the happy path */
    int rc = run_engine(host, "return { [''] = 'Pending', Pending = 'Updating', Updating = 'Running' }",
                        "return {}", 0, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_OK && final == FSM_RUNNING, "happy path: rc=%d %s", rc, err.message);
    CHECK(strcmp(log, ">Pending:because|Pending>Updating:because|Updating>Running:because") == 0,
          "happy path log: %s", log);

    /* an answer outside the table is not obeyed: Updating => Reverted becomes Error */
    rc = run_engine(host,
                    "return { [''] = 'Pending', Pending = 'Updating', Updating = 'Reverted',"
                    " Error = 'Rollback', Rollback = 'Reverted' }",
                    "return {}", 0, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_OK && final == FSM_REVERTED, "forbidden answer: rc=%d %s", rc, err.message);
    CHECK(strstr(log, "Updating>Error:internal error: Updating => Reverted is not a transition") != NULL,
          "forbidden answer log: %s", log);

    /* a Lua error in step is an Error with the message, never a crash */
    rc = run_engine(host, "return { [''] = 'Pending', Pending = 'raise', Error = 'Failure' }",
                    "return {}", 0, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_OK && final == FSM_FAILURE, "raising step: rc=%d %s", rc, err.message);
    CHECK(strstr(log, "Pending>Error:internal error in Pending:") && strstr(log, "boom in Pending"),
          "raising step log: %s", log);

    /* a failing before-hook of Running turns Updating => Running into Error */
    rc = run_engine(host,
                    "return { [''] = 'Pending', Pending = 'Updating', Updating = 'Running',"
                    " Error = 'Rollback', Rollback = 'Reverted' }",
                    "return { Running = true }", 0, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_OK && final == FSM_REVERTED, "veto Running: rc=%d %s", rc, err.message);
    CHECK(strstr(log, "Updating>Error:before hook of Running failed: vetoed Running") != NULL,
          "veto Running log: %s", log);

    /* a failing before-hook of Reverted: Rollback => Error is not allowed, so Failure */
    rc = run_engine(host,
                    "return { [''] = 'Pending', Pending = 'Updating', Updating = 'Deadline',"
                    " Deadline = 'Rollback', Rollback = 'Reverted' }",
                    "return { Reverted = true }", 0, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_OK && final == FSM_FAILURE, "veto Reverted: rc=%d %s", rc, err.message);
    CHECK(strstr(log, "Rollback>Failure:before hook of Reverted failed") != NULL,
          "veto Reverted log: %s", log);

    /* a conflicting write is re-decided: step runs again, nothing is skipped */
    rc = run_engine(host,
                    "return { [''] = 'Pending', ['+'] = 'Pending', Pending = 'Updating',"
                    " Updating = 'Running' }",
                    "return {}", 1, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_OK && final == FSM_RUNNING, "conflict: rc=%d %s", rc, err.message);
    CHECK(strcmp(log, ">Pending:because|Pending>Updating:because|Updating>Running:because") == 0,
          "conflict log: %s", log);

    /* a record that never stops conflicting is refused, not spun on */
    rc = run_engine(host, "local t = { [''] = 'Pending' }; t['+'] = 'Pending'; "
                          "return setmetatable(t, { __newindex = function() end })",
                    "return {}", 1000, &final, log, sizeof log, &err);
    CHECK(rc == ATOM_EBUSY, "endless conflict: rc=%d %s", rc, err.message);

    lh_free(host);
}

int main(void)
{
    test_table();
    test_names_and_terminal();
    test_driver();
    if (failures) {
        fprintf(stderr, "test_fsm: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_fsm: ok\n");
    return 0;
}

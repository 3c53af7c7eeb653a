/* Compiles include/atom.h on its own (C11 and C++, -pedantic -Werror): the
 * public header must need nothing else and warn about nothing. Never run. */
#include <atom.h>
#include <atom.h> /* twice: the include guard works */

/* Touch every type so a typo in a typedef shows here. */
int headertest_use(atom_runtime *rt, atom_release *r, atom_call *call);
int headertest_use(atom_runtime *rt, atom_release *r, atom_call *call)
{
    atom_progress p = {ATOM_PROGRESS_TRANSITION, "r", 1, ATOM_STATE_NONE, ATOM_STATE_PENDING, 0, ""};
    atom_release_info info;
    atom_version_info v;
    atom_state s = ATOM_STATE_NONE;
    (void)p;
    (void)info;
    (void)v;
    (void)call;
    return atom_release_run(r, &s) + atom_runtime_last_code(rt) + (int)ATOM_OK;
}

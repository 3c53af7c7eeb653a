#include "error.h"

#include <stdarg.h>
#include <stdio.h>

int atom_error_set(atom_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

void atom_error_clear(atom_error *err)
{
    if (err) {
        err->code = ATOM_OK;
        err->message[0] = '\0';
    }
}

const char *atom_status_name(int code)
{
    switch (code) {
    case ATOM_OK: return "ATOM_OK";
    case ATOM_EINVAL: return "ATOM_EINVAL";
    case ATOM_ENOMEM: return "ATOM_ENOMEM";
    case ATOM_EIO: return "ATOM_EIO";
    case ATOM_ELUA: return "ATOM_ELUA";
    case ATOM_EKUBE: return "ATOM_EKUBE";
    case ATOM_EBUSY: return "ATOM_EBUSY";
    case ATOM_EBUDGET: return "ATOM_EBUDGET";
    case ATOM_ESTATE: return "ATOM_ESTATE";
    default: return "ATOM_EUNKNOWN";
    }
}

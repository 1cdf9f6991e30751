#ifndef MM_QUICKTEST_H
#define MM_QUICKTEST_H

#include <stddef.h>

struct mm_ctx;

#define MM_QUICKTEST_DEFAULT_TIMEOUT_MS (10L * 60 * 1000)

/* Checks the ADDRESS of `--quick-test ADDRESS` given to `command` for
 * DOMAIN (as typed): LOCAL@DOMAIN, the local part a plain dot-atom.
 * Returns 0, or -1 with a one-line reason in err.  An invalid DOMAIN is
 * left to the command to report. */
int mm_quicktest_check_address(const char *address, const char *domain, const char *command,
                               char *err, size_t errlen);

/* The quick test of a domain whose mode verified: sends one message to
 * ctx->args.quick_test the way the internet would (the domain's MX, SMTP)
 * and reads the message trace (a plugin's ABI 1.1 trace operation; the
 * plugin of `mode` is asked first) until it shows the message delivered
 * having passed through the service exactly once, or the deadline passes.
 * Shows progress, prints the result, and adds "quick_test" to ctx->doc.
 * Returns MM_OK when it passed, MM_UNVERIFIED when it did not (ctx->err
 * says what was seen, ctx->err_detail lists the hops), MM_ERR when it could
 * not run. */
int mm_quicktest_run(struct mm_ctx *ctx, const char *domain, const char *profile,
                     const char *mode);

#endif

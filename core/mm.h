#ifndef MM_H
#define MM_H

/* Result codes of the core's functions; they are also the exit codes. */
enum mm_rc {
	MM_OK = 0,
	MM_ERR = 1,          /* failed: the message says why */
	MM_USAGE = 2,        /* bad command line */
	MM_UNVERIFIED = 3,   /* verification failed */
	MM_REFUSED = 4       /* refused by the one-mode invariant or a conflict */
};

#define MM_ERR_MAX 1024

#endif

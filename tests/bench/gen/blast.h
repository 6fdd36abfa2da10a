/* blast.h - `mwbench blast-server`: a minimal fan-out server for calibrating the
 * generator (see blast.c). */
#ifndef MWB_BLAST_H
#define MWB_BLAST_H

/* Serves on 127.0.0.1:port (0: any free port, printed) for `duration` seconds.
 * Returns 0, or 1 when it cannot listen. */
int blast_run(int port, double duration);

#endif

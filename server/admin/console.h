/*
 * console.h - the web console's files, served at / by the admin listener
 * from the console directory (www/ installed in $(pkgdatadir)/www, or
 * --console-dir).  Only GET and HEAD; no path may leave the directory.
 *
 * Threading: loop thread.  A file is read whole per request (they are
 * small).
 */
#ifndef CONSOLE_H
#define CONSOLE_H

struct areq;

void console_reply(struct areq *r);

#endif

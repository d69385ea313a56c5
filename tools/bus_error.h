/*
 * bus_error.h - a clear last word when a mapped file is cut short.
 *
 * A map, metrics or log file truncated by another process while this one
 * has it mapped turns the next touch of the lost pages into SIGBUS
 * (docs/RELIABILITY.md, "Files truncated under a mapping"). No library can
 * prevent that (LMDB and SQLite's mmap mode document the same). A tool can
 * at least die saying what happened instead of "Bus error (core dumped)".
 */
#ifndef HASHMMAP_TOOLS_BUS_ERROR_H
#define HASHMMAP_TOOLS_BUS_ERROR_H

/* The exit status of a tool stopped by a truncated file: the tools' "any
 * other error" (hashmmap(1), hashmmap-stat(1)). */
#define TOOL_EXIT_BUS_ERROR 3

/* From now on, a SIGBUS on a page of a mapped file prints one line on
 * standard error naming prog, the file and the offset, then exits with
 * TOOL_EXIT_BUS_ERROR. A SIGBUS anywhere else (not a file mapping: a bug)
 * keeps its default action. A writer that dies this way holds its locks as
 * any killed process does: the next process to lock repairs them. */
void tool_report_bus_errors(const char *prog);

#endif

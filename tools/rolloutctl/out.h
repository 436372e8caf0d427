/* Output of rows as an aligned table (people), CSV or JSON (programs). One writer serves every
 * listing, so the formats agree on columns, NULLs and types. Rows are written as they come:
 * a listing of 72,000 employees never sits in memory, unless the caller asks for a buffered
 * table (small listings, where aligning the columns to the data reads better). */
#ifndef ROLLOUTCTL_OUT_H
#define ROLLOUTCTL_OUT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum out_format {
    OUT_TABLE,  /* aligned columns with a header line, for a terminal */
    OUT_CSV,    /* RFC 4180, header row, UTF-8 */
    OUT_JSON,   /* one array of objects */
    OUT_NDJSON, /* one object per line */
    OUT_TEXT    /* a command's own layout for people (employee show) */
};

#define OUT_ALLOW(f) (1u << (f))

enum out_type {
    OUT_T_TEXT, /* JSON string */
    OUT_T_INT,  /* JSON number */
    OUT_T_NUM,  /* JSON number (decimal) */
    OUT_T_BOOL, /* PostgreSQL's t/f: JSON true/false, "yes"/"no" in a table */
    OUT_T_JSON  /* already JSON text (jsonb from the database) */
};

struct out_column {
    const char *name;
    enum out_type type;
    int width; /* table: least width in characters (streamed tables keep to it) */
};

struct out_writer {
    FILE *f;
    enum out_format fmt;
    const struct out_column *cols;
    int ncols;
    bool buffered; /* table only: hold the rows to size the columns to the data */
    bool color;    /* table only: bold header */
    char **cells;  /* buffered rows, ncols per row; NULL cells are SQL NULL */
    size_t nrows, cap;
    size_t count; /* rows written */
};

/* Parses "table", "csv", "json", "ndjson", "text" if allowed (a mask of OUT_ALLOW bits). */
bool out_parse_format(const char *s, unsigned allowed, enum out_format *out);
const char *out_format_name(enum out_format f);

/* The formats a command offers, and how its usage error names them. */
struct out_formats {
    unsigned allowed;  /* OUT_ALLOW bits */
    const char *names; /* "table, csv or json" */
};
/* table, csv or json: the listings (search, progress, targets list, token list) */
extern const struct out_formats out_listing_formats;
/* text or json: a command's own layout or JSON (employee show, device show) */
extern const struct out_formats out_show_formats;

/* A cell of a result as text, NULL for SQL NULL. */
const char *out_cell(const PGresult *res, int row, int col);
/* A cell of a result as a JSON string, JSON null for SQL NULL (a new reference). */
json_t *out_cell_json_string(const PGresult *res, int row, int col);

void out_begin(struct out_writer *w, FILE *f, enum out_format fmt, const struct out_column *cols,
               int ncols, bool buffered, bool color);
/* values[i] NULL is SQL NULL. */
void out_row(struct out_writer *w, const char *const *values);
/* Columns 0..ncols-1 of one row of a result. */
void out_row_pg(struct out_writer *w, const PGresult *res, int row);
void out_end(struct out_writer *w);

/* One CSV field, quoted when it must be. */
void out_csv_field(FILE *f, const char *s);

/* Characters (code points) of UTF-8 text: what a terminal shows, for alignment. */
size_t out_display_width(const char *s);
/* s, then spaces up to width characters. */
void out_pad(FILE *f, const char *s, int width);

/* A bar of `width` cells for ratio 0..1, with Unicode eighth blocks. */
void out_bar(FILE *f, double ratio, int width);

/* A progress bar on stderr, redrawn in place ("\r"); call out_progress_done to end its line. */
void out_progress(const char *label, double ratio, const char *detail);
void out_progress_done(void);

#endif

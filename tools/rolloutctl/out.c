#include "out.h"
#include "ctl.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const format_names[] = {
    [OUT_TABLE] = "table",   [OUT_CSV] = "csv",   [OUT_JSON] = "json",
    [OUT_NDJSON] = "ndjson", [OUT_TEXT] = "text",
};

bool out_parse_format(const char *s, unsigned allowed, enum out_format *out)
{
    for (int f = OUT_TABLE; f <= OUT_TEXT; f++) {
        if ((allowed & OUT_ALLOW(f)) && strcmp(s, format_names[f]) == 0) {
            *out = (enum out_format)f;
            return true;
        }
    }
    return false;
}

const char *out_format_name(enum out_format f)
{
    return format_names[f];
}

const struct out_formats out_listing_formats = {
    OUT_ALLOW(OUT_TABLE) | OUT_ALLOW(OUT_CSV) | OUT_ALLOW(OUT_JSON), "table, csv or json"};
const struct out_formats out_show_formats = {OUT_ALLOW(OUT_TEXT) | OUT_ALLOW(OUT_JSON),
                                             "text or json"};

const char *out_cell(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

json_t *out_cell_json_string(const PGresult *res, int row, int col)
{
    const char *v = out_cell(res, row, col);
    return v ? json_string(v) : json_null();
}

void out_csv_field(FILE *f, const char *s)
{
    if (s == NULL)
        return;
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

size_t out_display_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) /* count lead bytes, not continuation bytes */
            n++;
    return n;
}

void out_pad(FILE *f, const char *s, int width)
{
    fputs(s, f);
    for (int n = (int)out_display_width(s); n < width; n++)
        fputc(' ', f);
}

void out_bar(FILE *f, double ratio, int width)
{
    static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    if (ratio < 0)
        ratio = 0;
    if (ratio > 1)
        ratio = 1;
    int total = (int)(ratio * width * 8 + 0.5);
    int full = total / 8, part = total % 8, cells = 0;
    for (; cells < full; cells++)
        fputs("█", f);
    if (part && cells < width) {
        fputs(eighths[part], f);
        cells++;
    }
    for (; cells < width; cells++)
        fputs("·", f);
}

void out_progress(const char *label, double ratio, const char *detail)
{
    fprintf(stderr, "\r%s ", label);
    out_bar(stderr, ratio, 30);
    fprintf(stderr, " %3d%% %s\033[K", (int)(ratio * 100), detail);
    fflush(stderr);
}

void out_progress_done(void)
{
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

void out_begin(struct out_writer *w, FILE *f, enum out_format fmt, const struct out_column *cols,
               int ncols, bool buffered, bool color)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    w->fmt = fmt;
    w->cols = cols;
    w->ncols = ncols;
    w->buffered = buffered && fmt == OUT_TABLE;
    w->color = color;
    if (fmt == OUT_CSV) {
        for (int i = 0; i < ncols; i++) {
            if (i)
                fputc(',', f);
            out_csv_field(f, cols[i].name);
        }
        fputc('\n', f);
    } else if (fmt == OUT_JSON) {
        fputc('[', f);
    }
}

static const char *table_cell(const struct out_column *c, const char *v)
{
    if (v == NULL)
        return "-";
    if (c->type == OUT_T_BOOL)
        return strcmp(v, "t") == 0 ? "yes" : "no";
    return v;
}

static void table_header(struct out_writer *w, const int *widths)
{
    if (w->color)
        fputs("\033[1m", w->f);
    for (int i = 0; i < w->ncols; i++) {
        char up[64];
        snprintf(up, sizeof up, "%s", w->cols[i].name);
        for (char *p = up; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        if (i == w->ncols - 1)
            fputs(up, w->f);
        else
            out_pad(w->f, up, widths[i] + 2);
    }
    if (w->color)
        fputs("\033[0m", w->f);
    fputc('\n', w->f);
}

static void table_line(struct out_writer *w, const int *widths, char *const *values)
{
    for (int i = 0; i < w->ncols; i++) {
        const char *cell = table_cell(&w->cols[i], values[i]);
        if (i == w->ncols - 1)
            fputs(cell, w->f); /* no trailing blanks */
        else
            out_pad(w->f, cell, widths[i] + 2);
    }
    fputc('\n', w->f);
}

/* A streamed table cannot look at the data: each column is as wide as declared, or as its
 * header. Longer cells push the rest of their line to the right. */
static void stream_widths(const struct out_writer *w, int *widths)
{
    for (int i = 0; i < w->ncols && i < 64; i++) {
        int h = (int)out_display_width(w->cols[i].name);
        widths[i] = w->cols[i].width > h ? w->cols[i].width : h;
    }
}

static json_t *json_value(const struct out_column *c, const char *v)
{
    if (v == NULL)
        return json_null();
    switch (c->type) {
    case OUT_T_INT:
        return json_integer(strtoll(v, NULL, 10));
    case OUT_T_NUM:
        return json_real(strtod(v, NULL));
    case OUT_T_BOOL:
        return json_boolean(strcmp(v, "t") == 0);
    case OUT_T_JSON: {
        json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
        return j ? j : json_string(v);
    }
    case OUT_T_TEXT:
        break;
    }
    return json_string(v);
}

static void json_line(struct out_writer *w, const char *const *values)
{
    json_t *obj = json_object();
    for (int i = 0; i < w->ncols; i++)
        json_object_set_new(obj, w->cols[i].name, json_value(&w->cols[i], values[i]));
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (w->fmt == OUT_JSON)
        fputs(w->count ? ",\n" : "\n", w->f);
    fputs(text ? text : "null", w->f);
    if (w->fmt == OUT_NDJSON)
        fputc('\n', w->f);
    free(text);
}

void out_row(struct out_writer *w, const char *const *values)
{
    switch (w->fmt) {
    case OUT_CSV:
        for (int i = 0; i < w->ncols; i++) {
            if (i)
                fputc(',', w->f);
            const char *v = values[i];
            if (v && w->cols[i].type == OUT_T_BOOL) /* spreadsheets read true/false, not t/f */
                v = strcmp(v, "t") == 0 ? "true" : "false";
            out_csv_field(w->f, v);
        }
        fputc('\n', w->f);
        break;
    case OUT_JSON:
    case OUT_NDJSON:
        json_line(w, values);
        break;
    case OUT_TABLE:
    case OUT_TEXT:
        if (w->buffered) {
            if (w->nrows == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 16;
                w->cells = ctl_xrealloc(w->cells, w->cap * (size_t)w->ncols * sizeof *w->cells);
            }
            for (int i = 0; i < w->ncols; i++)
                w->cells[w->nrows * (size_t)w->ncols + (size_t)i] =
                    values[i] ? ctl_xstrdup(values[i]) : NULL;
            w->nrows++;
        } else {
            int widths[64] = {0};
            stream_widths(w, widths);
            if (w->count == 0)
                table_header(w, widths);
            table_line(w, widths, (char *const *)values);
        }
        break;
    }
    w->count++;
}

void out_row_pg(struct out_writer *w, const PGresult *res, int row)
{
    const char *values[64];
    for (int i = 0; i < w->ncols && i < 64; i++)
        values[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
    out_row(w, values);
}

void out_end(struct out_writer *w)
{
    if (w->fmt == OUT_JSON) {
        fputs(w->count ? "\n]\n" : "]\n", w->f);
    } else if ((w->fmt == OUT_TABLE || w->fmt == OUT_TEXT) && w->buffered) {
        int widths[64] = {0};
        for (int i = 0; i < w->ncols && i < 64; i++) {
            widths[i] = (int)out_display_width(w->cols[i].name);
            if (widths[i] < w->cols[i].width)
                widths[i] = w->cols[i].width;
            for (size_t r = 0; r < w->nrows; r++) {
                const char *cell =
                    table_cell(&w->cols[i], w->cells[r * (size_t)w->ncols + (size_t)i]);
                int n = (int)out_display_width(cell);
                if (n > widths[i])
                    widths[i] = n;
            }
        }
        table_header(w, widths);
        for (size_t r = 0; r < w->nrows; r++)
            table_line(w, widths, &w->cells[r * (size_t)w->ncols]);
        for (size_t k = 0; k < w->nrows * (size_t)w->ncols; k++)
            free(w->cells[k]);
        free(w->cells);
        w->cells = NULL;
    } else if (w->fmt == OUT_TABLE && w->count == 0) {
        int widths[64] = {0};
        stream_widths(w, widths);
        table_header(w, widths); /* an empty listing still says what it would list */
    }
    fflush(w->f);
}

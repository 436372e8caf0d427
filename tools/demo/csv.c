/* rollout-demo csv DIR: ressorts.csv, dienststellen.csv and employees.csv in the formats
 * `rolloutctl import` reads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* Plausible German names, old and young; combined at random they are fictitious. */
static const char *const first_names[] = {
    "Anna",         "Andreas",    "Angelika", "Alexander", "Birgit",    "Bernd",      "Claudia",
    "Christian",    "Daniela",    "Dirk",     "Elke",      "Frank",     "Gabriele",   "Günter",
    "Heike",        "Holger",     "Ines",     "Jürgen",    "Julia",     "Jan",        "Katrin",
    "Klaus",        "Lena",       "Lukas",    "Monika",    "Michael",   "Nadine",     "Niklas",
    "Petra",        "Peter",      "Renate",   "Ralf",      "Sabine",    "Stefan",     "Susanne",
    "Thomas",       "Ursula",     "Uwe",      "Vanessa",   "Volker",    "Wolfgang",   "Yvonne",
    "Sophie",       "Tobias",     "Marie",    "Felix",     "Leonie",    "Maximilian", "Laura",
    "Jonas",        "Sarah",      "Tim",      "Katharina", "Sebastian", "Melanie",    "Matthias",
    "Özlem",        "Mehmet",     "Ayşe",     "Kerstin",   "Jörg",      "Bärbel",     "Hans-Peter",
    "Anne-Kathrin", "Karl-Heinz", "Doris",    "Manfred",   "Silke",     "Carsten",    "Nicole",
    "Markus",       "Tanja",      "Oliver",   "Simone",    "Florian",   "Jana",       "Dennis",
    "Christina",    "Patrick",    "Hannah",   "Emre",      "Elif",      "Dominik",    "Franziska",
};

static const char *const last_names[] = {
    "Müller",     "Schmidt",  "Schneider", "Fischer",  "Weber",     "Meyer",      "Wagner",
    "Becker",     "Schulz",   "Hoffmann",  "Schäfer",  "Koch",      "Bauer",      "Richter",
    "Klein",      "Wolf",     "Schröder",  "Neumann",  "Schwarz",   "Zimmermann", "Braun",
    "Krüger",     "Hofmann",  "Hartmann",  "Lange",    "Schmitt",   "Werner",     "Schmitz",
    "Krause",     "Meier",    "Lehmann",   "Schmid",   "Schulze",   "Maier",      "Köhler",
    "Herrmann",   "König",    "Walter",    "Mayer",    "Huber",     "Kaiser",     "Fuchs",
    "Peters",     "Lang",     "Scholz",    "Möller",   "Weiß",      "Jung",       "Hahn",
    "Schubert",   "Vogel",    "Friedrich", "Keller",   "Günther",   "Frank",      "Berger",
    "Winkler",    "Roth",     "Beck",      "Lorenz",   "Baumann",   "Franke",     "Albrecht",
    "Schuster",   "Simon",    "Ludwig",    "Böhm",     "Winter",    "Kraus",      "Martin",
    "Schumacher", "Krämer",   "Vogt",      "Stein",    "Jäger",     "Otto",       "Sommer",
    "Groß",       "Seidel",   "Heinrich",  "Brandt",   "Haas",      "Schreiber",  "Graf",
    "Dietrich",   "Ziegler",  "Kuhn",      "Kühn",     "Pohl",      "Engel",      "Horn",
    "Busch",      "Bergmann", "Thomas",    "Voigt",    "Sauer",     "Arnold",     "Wolff",
    "Pfeiffer",   "Yılmaz",   "Kaya",      "Demir",    "Nowak",     "Kowalski",   "Rossi",
    "von Berg",   "Heß",      "Dörr",      "Eckhardt", "Grünewald", "Ruppert",    "Schaub",
    "Zinn",       "Appel",    "Reinhardt", "Diehl",    "Seibert",   "Rühl",       "Wenzel",
};

#define COUNT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

void demo_csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static FILE *open_out(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "rollout-demo: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path)
{
    if (ferror(f) | (fclose(f) != 0)) {
        fprintf(stderr, "rollout-demo: writing %s failed\n", path);
        return 1;
    }
    return 0;
}

int demo_write_csv(const char *dir)
{
    char path[4096];
    int nres;
    const struct demo_ressort *res = demo_ressorts(&nres);
    FILE *f = open_out(dir, "ressorts.csv", path, sizeof path);
    if (f == NULL)
        return 1;
    fputs("ressort,name\n", f);
    for (int i = 0; i < nres; i++) {
        demo_csv_field(f, res[i].code);
        fputc(',', f);
        demo_csv_field(f, res[i].name);
        fputc('\n', f);
    }
    if (close_out(f, path))
        return 1;

    int noff;
    struct demo_office *off = demo_offices(&noff);
    f = open_out(dir, "dienststellen.csv", path, sizeof path);
    if (f == NULL) {
        free(off);
        return 1;
    }
    fputs("dienststelle,ressort,name,city\n", f);
    for (int i = 0; i < noff; i++) {
        demo_csv_field(f, off[i].code);
        fputc(',', f);
        demo_csv_field(f, res[off[i].ressort].code);
        fputc(',', f);
        demo_csv_field(f, off[i].name);
        fputc(',', f);
        demo_csv_field(f, off[i].city);
        fputc('\n', f);
    }
    if (close_out(f, path)) {
        free(off);
        return 1;
    }

    /* Every office gets its number of employees; the personnel numbers are shuffled over
     * them, as they were handed out over decades. */
    int *slot = demo_xmalloc(DEMO_EMPLOYEES * sizeof *slot);
    int k = 0;
    for (int i = 0; i < noff; i++)
        for (int j = 0; j < off[i].employees && k < DEMO_EMPLOYEES; j++)
            slot[k++] = i;
    while (k < DEMO_EMPLOYEES) /* cannot happen while the shares add up; keep it safe */
        slot[k++] = 0;
    struct demo_rng rng;
    demo_rng_seed(&rng, DEMO_SEED ^ 0xE3310Eull);
    for (int i = DEMO_EMPLOYEES - 1; i > 0; i--) {
        int j = (int)demo_rng_below(&rng, (uint32_t)i + 1);
        int t = slot[i];
        slot[i] = slot[j];
        slot[j] = t;
    }
    f = open_out(dir, "employees.csv", path, sizeof path);
    if (f == NULL) {
        free(slot);
        free(off);
        return 1;
    }
    fputs("personnel_number,dienststelle,name\n", f);
    for (int i = 0; i < DEMO_EMPLOYEES; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s %s", first_names[demo_rng_below(&rng, COUNT(first_names))],
                 last_names[demo_rng_below(&rng, COUNT(last_names))]);
        fprintf(f, "P%07d,%s,", i + 1, off[slot[i]].code);
        demo_csv_field(f, name);
        fputc('\n', f);
    }
    free(slot);
    free(off);
    return close_out(f, path);
}

/* rollout-demo: writes the deterministic demo data set. */
#include <string.h>
#include <sysexits.h>

#include "demo.h"

static const char usage[] =
    "usage: rollout-demo csv DIR\n"
    "       rollout-demo history DIR EMPLOYEES_CSV\n"
    "\n"
    "csv      writes DIR/ressorts.csv, DIR/dienststellen.csv (about 800 offices) and\n"
    "         DIR/employees.csv (72,000 employees P0000001..P0072000) for `rolloutctl import`\n"
    "history  writes about eight months of rollout events up to yesterday for the employees\n"
    "         of EMPLOYEES_CSV as JSON batches DIR/0001.json, ... (at most 1000 events each)\n"
    "         for POST /v1/events\n"
    "The same seed every time: the same files on every machine (history: on the same day).\n";

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "csv") == 0)
        return demo_write_csv(argv[2]) ? EX_CANTCREAT : 0;
    if (argc == 4 && strcmp(argv[1], "history") == 0)
        return demo_write_history(argv[2], argv[3]) ? EX_CANTCREAT : 0;
    fputs(usage, stderr);
    return EX_USAGE;
}

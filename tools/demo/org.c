/* The organisation of the demo: the Ressorts of the Hessian cabinet and about 800 offices in
 * Hessian towns, modelled on the real administration (Finanzämter, Polizeipräsidien with their
 * Reviere and Stationen, courts, prisons, Forstämter, Straßenmeistereien, ...). Teachers and
 * university staff are not among the 72,000, so schools and universities are not here. */
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static const struct demo_ressort ressorts[] = {
    {"StK", "Hessische Staatskanzlei", 420},
    {"HMdF", "Hessisches Ministerium der Finanzen", 16200},
    {"HMdIS", "Hessisches Ministerium des Innern, für Sicherheit und Heimatschutz", 25800},
    {"HMdJ", "Hessisches Ministerium der Justiz und für den Rechtsstaat", 14100},
    {"HMKB", "Hessisches Ministerium für Kultus, Bildung und Chancen", 2300},
    {"HMWK", "Hessisches Ministerium für Wissenschaft und Forschung, Kunst und Kultur", 1650},
    {"HMWVW", "Hessisches Ministerium für Wirtschaft, Energie, Verkehr, Wohnen und ländlichen Raum",
     4600},
    {"HMLU",
     "Hessisches Ministerium für Landwirtschaft und Umwelt, Weinbau, Forsten, Jagd und "
     "Heimat",
     3400},
    {"HMFG", "Hessisches Ministerium für Familie, Senioren, Sport, Gesundheit und Pflege", 1150},
    {"HMdS", "Hessisches Ministerium für Arbeit, Integration, Jugend und Soziales", 1650},
    {"HMinD", "Hessisches Ministerium für Digitalisierung und Innovation", 390},
    {"HMBE",
     "Hessisches Ministerium für Bundes- und Europaangelegenheiten, Internationales und "
     "Entbürokratisierung",
     340},
};
#define RESSORT_COUNT ((int)(sizeof ressorts / sizeof ressorts[0]))

const struct demo_ressort *demo_ressorts(int *count)
{
    *count = RESSORT_COUNT;
    return ressorts;
}

/* Towns: the short code used in office codes (ASCII), and the name. */
static const struct {
    const char *code, *name;
} cities[] = {
    {"WI", "Wiesbaden"},
    {"F", "Frankfurt am Main"},
    {"KS", "Kassel"},
    {"DA", "Darmstadt"},
    {"OF", "Offenbach am Main"},
    {"GI", "Gießen"},
    {"MR", "Marburg"},
    {"FD", "Fulda"},
    {"HU", "Hanau"},
    {"WZ", "Wetzlar"},
    {"LM", "Limburg an der Lahn"},
    {"HG", "Bad Homburg v. d. Höhe"},
    {"RUE", "Rüsselsheim am Main"},
    {"HEF", "Bad Hersfeld"},
    {"ESW", "Eschwege"},
    {"KB", "Korbach"},
    {"FB", "Friedberg (Hessen)"},
    {"DIL", "Dillenburg"},
    {"BEN", "Bensheim"},
    {"HP", "Heppenheim"},
    {"DI", "Dieburg"},
    {"GG", "Groß-Gerau"},
    {"HOF", "Hofheim am Taunus"},
    {"AS", "Alsfeld"},
    {"LAU", "Lauterbach"},
    {"SM", "Schwalmstadt"},
    {"HR", "Homberg (Efze)"},
    {"WIZ", "Witzenhausen"},
    {"HOG", "Hofgeismar"},
    {"FKB", "Frankenberg (Eder)"},
    {"BID", "Biedenkopf"},
    {"BUE", "Büdingen"},
    {"GN", "Gelnhausen"},
    {"SLU", "Schlüchtern"},
    {"ERB", "Erbach (Odenwald)"},
    {"MI", "Michelstadt"},
    {"RUD", "Rüdesheim am Rhein"},
    {"ID", "Idstein"},
    {"SWA", "Bad Schwalbach"},
    {"USI", "Usingen"},
    {"WEL", "Weilburg"},
    {"HUE", "Hünfeld"},
    {"MEG", "Melsungen"},
    {"FZ", "Fritzlar"},
    {"ROF", "Rotenburg an der Fulda"},
    {"AR", "Bad Arolsen"},
    {"BUT", "Butzbach"},
    {"DR", "Dreieich"},
    {"LG", "Langen (Hessen)"},
    {"SEL", "Seligenstadt"},
    {"NI", "Nidda"},
    {"VIL", "Bad Vilbel"},
    {"ELT", "Eltville am Rhein"},
    {"KOE", "Königstein im Taunus"},
    {"OU", "Oberursel (Taunus)"},
    {"ROD", "Rodgau"},
    {"VI", "Viernheim"},
    {"LA", "Lampertheim"},
    {"WST", "Weiterstadt"},
    {"HAD", "Hadamar"},
    {"HB", "Herborn"},
    {"NIS", "Neu-Isenburg"},
    {"MTL", "Maintal"},
    {"BN", "Bad Nauheim"},
    {"BAU", "Baunatal"},
    {"KIR", "Kirchhain"},
    {"STA", "Stadtallendorf"},
    {"HEL", "Hessisch Lichtenau"},
    {"WOH", "Wolfhagen"},
    {"BW", "Bad Wildungen"},
    {"SON", "Sontra"},
    {"ROB", "Rockenberg"},
    {"LIC", "Lich"},
    {"MHM", "Mühlheim am Main"},
    {"SCH", "Schotten"},
    {"SLZ", "Schlitz"},
    {"GRI", "Griesheim"},
    {"BEB", "Bebra"},
    {"KEL", "Kelkheim (Taunus)"},
    {"ESB", "Eschborn"},
    {"BAB", "Babenhausen"},
    {"GRU", "Grünberg"},
    {"LOL", "Lollar"},
    {"NEU", "Neukirchen (Knüll)"},
    {"TRE", "Treysa"},
    {"VOE", "Vöhl"},
    {"JES", "Jesberg"},
    {"REI", "Reinhardshagen"},
    {"WEI", "Weilmünster"},
    {"BEE", "Beerfelden"},
    {"B", "Berlin"},
    {"BRU", "Brüssel"},
};
#define CITY_COUNT ((int)(sizeof cities / sizeof cities[0]))

/* One kind of office: the same name pattern in a list of towns. In the name, {city} is the
 * town's name and {n} the running number of this kind in that town (and {I} the same as a
 * Roman numeral, left out when the town has only one). The code is PREFIX-TOWN-NNN, numbered
 * per prefix and town across kinds. */
struct office_kind {
    const char *ressort;
    const char *prefix;
    const char *name;
    const char *towns; /* space-separated town codes; a code twice means two offices */
    double weight;     /* relative size of one office */
};

static const struct office_kind kinds[] = {
    /* StK */
    {"StK", "STK", "Hessische Staatskanzlei", "WI", 300},
    {"StK", "STK", "Hessische Landeszentrale für politische Bildung", "WI", 35},
    {"StK", "STK", "Hessische Staatskanzlei – Pressestelle und Protokoll", "WI", 40},
    /* HMBE */
    {"HMBE", "HMBE", "Ministerium für Bundes- und Europaangelegenheiten – Dienstsitz {city}", "WI",
     180},
    {"HMBE", "HMBE", "Landesvertretung Hessen beim Bund", "B", 90},
    {"HMBE", "HMBE", "Vertretung des Landes Hessen bei der Europäischen Union", "BRU", 60},
    /* HMinD */
    {"HMinD", "DIG", "Hessisches Ministerium für Digitalisierung und Innovation", "WI", 300},
    {"HMinD", "DIG", "Digitallabor Hessen – Standort {city}", "F DA", 40},
    /* HMdF */
    {"HMdF", "FIN", "Hessisches Ministerium der Finanzen", "WI", 550},
    {"HMdF", "OFD", "Oberfinanzdirektion Frankfurt am Main – Dienststelle {city}", "F KS", 450},
    {"HMdF", "FIN", "Finanzamt {city} {I}",
     "WI WI F F F F F KS KS DA OF OF GI MR FD HU WZ LM HG HEF ESW KB FB DIL BEN DI GG HOF AS SM "
     "FZ GN MI SWA NI LG HOG WEL ROF RUD BID",
     300},
    {"HMdF", "FIN", "Finanzamt {city} – Servicezentrum",
     "USI ID LAU ERB SLU BUE KIR MEG HB BN VIL OU ESB DR RUE BAU", 35},
    {"HMdF", "FIN", "Steuerfahndung {city}", "F KS DA GI WI OF FD", 60},
    {"HMdF", "HZD", "Hessische Zentrale für Datenverarbeitung – Standort {city}", "WI HUE F", 520},
    {"HMdF", "LBIH", "Landesbetrieb Bau und Immobilien Hessen – Niederlassung {city}",
     "F DA GI KS WI FD MR", 170},
    {"HMdF", "LBIH", "Landesbetrieb Bau und Immobilien Hessen – Projektbüro {city}",
     "HU WZ LM HEF ESW KB", 25},
    {"HMdF", "LBIH", "Landesbetrieb Bau und Immobilien Hessen – Bauleitung {city}",
     "OF HG RUE DI BEN GN FB BUT SM KIR", 15},
    {"HMdF", "HBS", "Hessische Bezügestelle – Standort {city}", "KS WI FD", 220},
    {"HMdF", "FIN", "Studienzentrum der Finanzverwaltung und Justiz", "ROF", 160},
    {"HMdF", "FIN", "Landesamt für Finanzen – Standort {city}", "F KS", 120},
    /* HMdIS: ministry, Regierungspräsidien, police, academies */
    {"HMdIS", "HMDIS", "Hessisches Ministerium des Innern, für Sicherheit und Heimatschutz", "WI",
     900},
    {"HMdIS", "RP", "Regierungspräsidium {city}", "DA GI KS", 950},
    {"HMdIS", "RP", "Regierungspräsidium Darmstadt – Dienstsitz {city}", "F WI OF", 140},
    {"HMdIS", "RP", "Regierungspräsidium Gießen – Dienstsitz {city}", "MR WZ HAD", 90},
    {"HMdIS", "RP", "Regierungspräsidium Kassel – Dienstsitz {city}", "HEF FD BAU", 90},
    {"HMdIS", "RP", "Regierungspräsidium Kassel – Zentrale Bußgeldstelle", "KS", 260},
    {"HMdIS", "POL", "Polizeipräsidium Frankfurt am Main", "F", 1100},
    {"HMdIS", "POL", "Polizeipräsidium Frankfurt am Main – Revier {n}",
     "F F F F F F F F F F F F F F F F F F", 130},
    {"HMdIS", "POL", "Polizeipräsidium Westhessen", "WI", 550},
    {"HMdIS", "POL", "Polizeipräsidium Westhessen – Revier {n}", "WI WI WI WI WI", 110},
    {"HMdIS", "POL", "Polizeipräsidium Westhessen – Polizeistation {city}",
     "RUD SWA ID HOF HG USI OU KOE ELT WEL HAD LM KEL ESB", 45},
    {"HMdIS", "POL", "Polizeipräsidium Südhessen", "DA", 500},
    {"HMdIS", "POL", "Polizeipräsidium Südhessen – Revier {n}", "DA DA DA DA", 110},
    {"HMdIS", "POL", "Polizeipräsidium Südhessen – Polizeistation {city}",
     "GG RUE BEN HP LA VI DI ERB MI WST GRI BAB BEE", 45},
    {"HMdIS", "POL", "Polizeipräsidium Südosthessen", "OF", 480},
    {"HMdIS", "POL", "Polizeipräsidium Südosthessen – Revier {n}", "OF OF OF", 110},
    {"HMdIS", "POL", "Polizeipräsidium Südosthessen – Polizeistation {city}",
     "HU HU GN SLU DR LG SEL ROD NIS MTL MHM", 50},
    {"HMdIS", "POL", "Polizeipräsidium Mittelhessen", "GI", 480},
    {"HMdIS", "POL", "Polizeipräsidium Mittelhessen – Revier {n}", "GI GI GI", 100},
    {"HMdIS", "POL", "Polizeipräsidium Mittelhessen – Polizeistation {city}",
     "MR MR WZ DIL HB FB BUT BUE BN VIL NI BID KIR STA GRU LIC", 50},
    {"HMdIS", "POL", "Polizeipräsidium Osthessen", "FD", 420},
    {"HMdIS", "POL", "Polizeipräsidium Osthessen – Revier {n}", "FD FD", 100},
    {"HMdIS", "POL", "Polizeipräsidium Osthessen – Polizeistation {city}",
     "HUE HEF ROF AS LAU SLZ BEB SCH", 45},
    {"HMdIS", "POL", "Polizeipräsidium Nordhessen", "KS", 520},
    {"HMdIS", "POL", "Polizeipräsidium Nordhessen – Revier {n}", "KS KS KS KS KS", 110},
    {"HMdIS", "POL", "Polizeipräsidium Nordhessen – Polizeistation {city}",
     "BAU HOG WOH ESW WIZ SON HEL MEG HR FZ SM KB AR FKB BW TRE", 45},
    {"HMdIS", "POL", "Polizeiautobahnstation {city}", "KS BAU HEF BN WI F DA", 60},
    {"HMdIS", "POL", "Kriminalkommissariat {n} {city}",
     "F F F F F F F F F F F F WI WI WI WI WI DA DA DA DA OF OF OF OF GI GI GI GI FD FD FD KS KS KS "
     "KS KS",
     45},
    {"HMdIS", "POL", "Wasserschutzpolizeistation {city}", "WI F RUD KS HU", 20},
    {"HMdIS", "POL", "Direktion Verkehrssicherheit {city}", "F WI DA OF GI FD KS", 40},
    {"HMdIS", "POL", "Regionale Kriminalinspektion {city}", "F WI DA OF GI FD KS MR HU LM RUE HEF",
     90},
    {"HMdIS", "HLKA", "Hessisches Landeskriminalamt", "WI", 1250},
    {"HMdIS", "HPE", "Hessisches Polizeipräsidium Einsatz", "WI", 900},
    {"HMdIS", "HPE", "Hessische Bereitschaftspolizei – Abteilung {city}", "LIC KS MHM", 420},
    {"HMdIS", "HPT", "Hessisches Polizeipräsidium für Technik", "WI", 420},
    {"HMdIS", "HOEMS", "Hochschule für öffentliches Management und Sicherheit – Abteilung {city}",
     "WI GI KS F MHM", 140},
    {"HMdIS", "LFV", "Landesamt für Verfassungsschutz Hessen", "WI", 380},
    {"HMdIS", "HLFS", "Hessische Landesfeuerwehrschule", "KS", 120},
    {"HMdIS", "KATS", "Katastrophenschutzzentrallager {city}", "WI KS GI DA", 12},
    /* HMdJ */
    {"HMdJ", "JUS", "Hessisches Ministerium der Justiz und für den Rechtsstaat", "WI", 380},
    {"HMdJ", "OLG", "Oberlandesgericht Frankfurt am Main", "F", 700},
    {"HMdJ", "LG", "Landgericht {city}", "DA F FD GI HU KS LM MR WI", 330},
    {"HMdJ", "AG", "Amtsgericht {city}",
     "AS HEF HG SWA BEN BID BUE BUT DA DI DIL ELT ESW F FB FZ FD GN GI GG HU HUE ID KS KOE KB "
     "LA LG LAU LM MR MEG MI NI OF RUD ROF SM SEL WZ WI WEL USI KIR WIZ",
     125},
    {"HMdJ", "STA", "Staatsanwaltschaft {city}", "DA F FD GI HU KS LM MR WI", 160},
    {"HMdJ", "STA", "Generalstaatsanwaltschaft Frankfurt am Main", "F", 140},
    {"HMdJ", "JVA", "Justizvollzugsanstalt {city} {I}",
     "BUT DA DI F F F FD GI HUE KS KS LM ROB SM WST WI", 260},
    {"HMdJ", "JVA", "Jugendarrestanstalt {city}", "GN", 30},
    {"HMdJ", "ARBG", "Arbeitsgericht {city}", "DA F FD GI KS OF WI", 40},
    {"HMdJ", "SG", "Sozialgericht {city}", "DA F FD GI KS MR WI", 45},
    {"HMdJ", "VG", "Verwaltungsgericht {city}", "DA F GI KS WI", 60},
    {"HMdJ", "OG", "Hessisches Finanzgericht", "KS", 100},
    {"HMdJ", "OG", "Hessisches Landesarbeitsgericht", "F", 60},
    {"HMdJ", "OG", "Hessisches Landessozialgericht", "DA", 60},
    {"HMdJ", "OG", "Hessischer Verwaltungsgerichtshof", "KS", 80},
    {"HMdJ", "BWH", "Bewährungshilfe {city}",
     "F F DA OF HU GI MR WZ FD HEF KS KS ESW KB WI LM RUE BEN GN FB WI DA GI FD KB HOF DIL "
     "ERB AS SM",
     18},
    /* HMKB (schools and teachers not counted) */
    {"HMKB", "HMKB", "Hessisches Ministerium für Kultus, Bildung und Chancen", "WI", 460},
    {"HMKB", "SSA", "Staatliches Schulamt {city}",
     "F WI DA HP OF HU FB GI MR WEL FD HEF KS FZ SWA RUE", 85},
    {"HMKB", "LKA", "Hessische Lehrkräfteakademie – Standort {city}", "F GI KS DA", 90},
    {"HMKB", "SPD", "Schulpsychologischer Dienst {city}",
     "F WI DA HP OF HU FB GI MR WEL FD HEF KS FZ SWA RUE", 8},
    /* HMWK (universities not counted) */
    {"HMWK", "HMWK", "Hessisches Ministerium für Wissenschaft und Forschung, Kunst und Kultur",
     "WI", 350},
    {"HMWK", "HLA", "Hessisches Landesarchiv – Staatsarchiv {city}", "MR DA WI", 65},
    {"HMWK", "MUS", "Hessisches Landesmuseum Darmstadt", "DA", 150},
    {"HMWK", "MUS", "Museumslandschaft Hessen Kassel", "KS", 300},
    {"HMWK", "SG", "Staatliche Schlösser und Gärten Hessen", "HG", 200},
    {"HMWK", "LFD", "Landesamt für Denkmalpflege Hessen – {city}", "WI MR DA", 50},
    /* HMWVW */
    {"HMWVW", "HMWVW",
     "Hessisches Ministerium für Wirtschaft, Energie, Verkehr, Wohnen und ländlichen Raum", "WI",
     520},
    {"HMWVW", "HM", "Hessen Mobil – Straßen- und Verkehrsmanagement", "WI", 420},
    {"HMWVW", "HM", "Hessen Mobil – Standort {city}", "DA F GN SCH DIL MR FD ESW AR KS", 150},
    {"HMWVW", "HM", "Hessen Mobil – Straßenmeisterei {city}",
     "AS LAU BID BUE BUT DIL ESW FKB FZ GN GG HEF HP HUE HOG ID KB KIR LM MEG MI NI ROF SLU SM "
     "SWA SON USI WEL WIZ WOH BW HAD HB BEN DI ERB KOE SEL WST AR HEL LIC STA GRU",
     22},
    {"HMWVW", "AFB", "Amt für Bodenmanagement {city}", "HP BUE FD KB LM MR HR", 120},
    {"HMWVW", "AFB", "Amt für Bodenmanagement – Außenstelle {city}",
     "DA F GI KS WI HEF ESW FKB WZ DIL ERB GN SWA AS", 25},
    {"HMWVW", "HVBG", "Hessische Verwaltung für Bodenmanagement und Geoinformation", "WI", 380},
    {"HMWVW", "EICH", "Hessische Eichdirektion", "KS", 60},
    {"HMWVW", "EICH", "Eichamt {city}", "DA GI FD KS WI", 15},
    /* HMLU */
    {"HMLU", "HMLU",
     "Hessisches Ministerium für Landwirtschaft und Umwelt, Weinbau, Forsten, Jagd und Heimat",
     "WI", 420},
    {"HMLU", "HF", "HessenForst – Landesbetriebsleitung", "KS", 160},
    {"HMLU", "HF", "HessenForst – Forstamt {city}",
     "BID HUE FKB DA DI DIL FD GG HU HB HEL KIR KOE LA LG NEU NI REI ROF RUD SLU SCH ESW WEL WEI "
     "WZ WI WOH WIZ HEF BEE MI MEG VOE AR GN SLZ JES AS BUE",
     45},
    {"HMLU", "HF", "HessenForst – Forstamt {city}, Revierförsterei {n}",
     "BID BID HUE HUE FKB FKB DA DA DI DI DIL DIL FD FD GG GG HU HU HB HB HEL HEL KIR KIR KOE "
     "KOE LA LA LG LG NEU NEU NI NI REI REI ROF ROF RUD RUD SLU SLU SCH SCH ESW ESW WEL WEL WEI "
     "WEI WZ WZ WOH WOH WIZ WIZ HEF HEF BEE BEE MI MI MEG MEG VOE VOE AR AR GN GN SLZ SLZ JES JES "
     "AS AS BUE BUE",
     8},
    {"HMLU", "HLNUG", "Hessisches Landesamt für Naturschutz, Umwelt und Geologie – {city}",
     "WI KS DA MR", 190},
    {"HMLU", "LLH", "Landesbetrieb Landwirtschaft Hessen – {city}", "KS GRI HEF FB AS WZ", 60},
    {"HMLU", "LHL", "Landesbetrieb Hessisches Landeslabor – {city}", "GI KS BEB WI", 120},
    {"HMLU", "HSW", "Hessische Staatsweingüter Kloster Eberbach", "ELT", 80},
    /* HMFG */
    {"HMFG", "HMFG", "Hessisches Ministerium für Familie, Senioren, Sport, Gesundheit und Pflege",
     "WI", 360},
    {"HMFG", "HLFGP", "Hessisches Landesamt für Gesundheit und Pflege – {city}", "DA F KS GI", 110},
    {"HMFG", "HLPUG", "Landesprüfungs- und Untersuchungsamt im Gesundheitswesen", "DIL", 100},
    {"HMFG", "HLFGP", "Hessische Landesstelle für Sport- und Gesundheitsförderung", "F", 40},
    /* HMdS */
    {"HMdS", "HMDS", "Hessisches Ministerium für Arbeit, Integration, Jugend und Soziales", "WI",
     380},
    {"HMdS", "HAVS", "Hessisches Amt für Versorgung und Soziales {city}", "DA F FD GI KS WI", 180},
    {"HMdS", "HAVS", "Hessisches Amt für Versorgung und Soziales – Außenstelle {city}",
     "HU MR HEF KB WZ OF LM ESW", 25},
};

static const char *city_name(const char *code)
{
    for (int i = 0; i < CITY_COUNT; i++)
        if (strcmp(cities[i].code, code) == 0)
            return cities[i].name;
    return NULL;
}

static int ressort_index(const char *code)
{
    for (int i = 0; i < RESSORT_COUNT; i++)
        if (strcmp(ressorts[i].code, code) == 0)
            return i;
    abort(); /* a typo in the table above */
}

static const char *roman(int n)
{
    static const char *const r[] = {"", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"};
    return n >= 0 && n < 10 ? r[n] : "X";
}

/* Expands a name template. */
static void expand(char *out, size_t len, const char *tpl, const char *city, int n, int of)
{
    size_t o = 0;
    for (const char *p = tpl; *p && o + 1 < len;) {
        const char *add = NULL;
        char num[16];
        if (strncmp(p, "{city}", 6) == 0) {
            add = city;
            p += 6;
        } else if (strncmp(p, "{n}", 3) == 0) {
            snprintf(num, sizeof num, "%d", n);
            add = num;
            p += 3;
        } else if (strncmp(p, "{I}", 3) == 0) {
            add = of > 1 ? roman(n) : "";
            p += 3;
        } else {
            out[o++] = *p++;
            continue;
        }
        for (const char *a = add; *a && o + 1 < len; a++)
            out[o++] = *a;
    }
    while (o > 0 && out[o - 1] == ' ') /* "Finanzamt Kassel " when {I} was left out */
        o--;
    out[o] = '\0';
}

struct demo_office *demo_offices(int *count)
{
    int cap = 1024, n = 0;
    struct demo_office *o = demo_xcalloc((size_t)cap, sizeof *o);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const struct office_kind *kind = &kinds[k];
        char towns[512];
        snprintf(towns, sizeof towns, "%s", kind->towns);
        char *tok[128];
        int ntok = 0;
        char *save = NULL;
        for (char *t = strtok_r(towns, " ", &save); t && ntok < 128; t = strtok_r(NULL, " ", &save))
            tok[ntok++] = t;
        for (int j = 0; j < ntok; j++) {
            const char *t = tok[j];
            const char *city = city_name(t); /* a typo in the table above */
            /* {n}: the how-manieth of this kind in the town; {I} needs to know if there are more */
            int of = 0, nth = 0;
            for (int m = 0; m < ntok; m++) {
                if (strcmp(tok[m], t) == 0) {
                    of++;
                    if (m <= j)
                        nth++;
                }
            }
            /* the code: prefix, town, number per prefix and town */
            int per = 0;
            char stem[32];
            snprintf(stem, sizeof stem, "%s-%s-", kind->prefix, t);
            for (int i = 0; i < n; i++)
                if (strncmp(o[i].code, stem, strlen(stem)) == 0)
                    per++;
            if (n == cap) {
                cap *= 2;
                o = demo_xrealloc(o, (size_t)cap * sizeof *o);
            }
            memset(&o[n], 0, sizeof o[n]);
            snprintf(o[n].code, sizeof o[n].code, "%.24s%03d", stem, (per + 1) % 1000);
            expand(o[n].name, sizeof o[n].name, kind->name, city, nth, of);
            o[n].city = city;
            o[n].ressort = ressort_index(kind->ressort);
            o[n].weight = kind->weight;
            n++;
        }
    }

    /* Share each Ressort's employees among its offices by weight, with some spread (no two
     * Finanzämter are the same size), rounding so the Ressort's total is exact. */
    struct demo_rng rng;
    demo_rng_seed(&rng, DEMO_SEED ^ 0x0FF1CEull);
    double *w = demo_xcalloc((size_t)n, sizeof *w);
    for (int i = 0; i < n; i++)
        w[i] = o[i].weight * (0.7 + 0.6 * demo_rng_unit(&rng));
    for (int r = 0; r < RESSORT_COUNT; r++) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            if (o[i].ressort == r)
                sum += w[i];
        int left = ressorts[r].employees, last = -1;
        for (int i = 0; i < n; i++) {
            if (o[i].ressort != r)
                continue;
            o[i].employees = (int)(ressorts[r].employees * w[i] / sum);
            if (o[i].employees < 3)
                o[i].employees = 3;
            left -= o[i].employees;
            last = i;
        }
        /* the rounding remainder goes to the largest office (the ministry or a Präsidium) */
        int big = last;
        for (int i = 0; i < n; i++)
            if (o[i].ressort == r && o[i].employees > o[big].employees)
                big = i;
        o[big].employees += left;
    }
    free(w);
    *count = n;
    return o;
}

int demo_office_find(const struct demo_office *offices, int count, const char *code)
{
    for (int i = 0; i < count; i++)
        if (strcmp(offices[i].code, code) == 0)
            return i;
    return -1;
}

#!/usr/bin/env bash
# `make gates`: run the go/no-go suite, build the Allure HTML report (also when the gates fail), and
# exit with the gate session's status (fixtures.gating.EXIT_*): 0 = GO (or an accepted conditional GO),
# 1 = NOGO or below the accepted level, 3 = error: a crash (dataset, extraction, probing), a bad or
# missing config, or a -k that selects no gate test. (`make gates` itself exits 2 whenever this script
# fails, make's own convention; it prints "Error N" with this script's status N.)
#
#   scripts/gates.sh [pytest args...]       e.g. scripts/gates.sh --gate-accept conditional -k decoder_block_08
#   STAGE1_5_CONFIG=config/stage1_5.yaml scripts/gates.sh
#
# Outputs under $REPORTS_DIR (default reports/): allure-results/, benchmark.json and
# allure-report/index.html (one self-contained file that opens from file://).
# The Allure 2 generator is npm allure-commandline (it bundles its jars; needs node and Java 17),
# installed once into .tools/node_modules.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
CONFIG=${STAGE1_5_CONFIG:-config/demo.yaml}
REPORTS=${REPORTS_DIR:-reports}
TOOLS=.tools
ALLURE_VERSION=2.46.1
ALLURE_JS=$TOOLS/node_modules/allure-commandline/bin/allure

mkdir -p "$REPORTS"
"$PY" -m pytest gates \
    --stage1-5-config "$CONFIG" \
    --alluredir "$REPORTS/allure-results" --clean-alluredir \
    --benchmark-json "$REPORTS/benchmark.json" \
    "$@"
status=$?

installed_version() {
    node -p "require('./$TOOLS/node_modules/allure-commandline/package.json').version" 2>/dev/null
}

build_report() {
    if ! command -v node >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
        echo "[gates] cannot build the HTML report: the Allure generator needs node and Java 17 (apt-get install -y nodejs npm openjdk-17-jre-headless)" >&2
        return 1
    fi
    if [ "$(installed_version)" != "$ALLURE_VERSION" ]; then
        echo "[gates] installing allure-commandline@$ALLURE_VERSION into $TOOLS/"
        mkdir -p "$TOOLS"
        npm install --prefix "$TOOLS" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
            "allure-commandline@$ALLURE_VERSION" || return 1
    fi
    ALLURE_NO_ANALYTICS=true node "$ALLURE_JS" generate --single-file "$REPORTS/allure-results" \
        -o "$REPORTS/allure-report" --clean >/dev/null || return 1
    echo "[gates] Allure report: $REPORTS/allure-report/index.html"
}

if [ -d "$REPORTS/allure-results" ]; then
    build_report || echo "[gates] WARNING: the Allure HTML report was not built (see above)" >&2
fi
echo "[gates] exit status $status (0 = accepted decision, 1 = NOGO or below the accepted level, 3 = error)"
exit "$status"

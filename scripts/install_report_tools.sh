#!/usr/bin/env bash
# Best-effort install of what the Allure HTML report and its browser test need: node + Java 17 (Allure 2
# generator, npm allure-commandline into .tools/) and Debian chromium (headless screenshot test).
# Called by `make test` and `make gates`, not by `make demo`. Never fails the set-up: whatever cannot be
# installed here makes the one test that needs it skip with its reason.
set -u
cd "$(dirname "$0")/.."
ALLURE_VERSION=2.46.1
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing ${missing[*]} (apt)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/tmp/stage1_5_apt.log 2>&1 \
            || echo "[setup] apt-get install ${missing[*]} failed (see /tmp/stage1_5_apt.log); the HTML report test will skip"
    else
        echo "[setup] not installing ${missing[*]} (needs root and apt-get); the HTML report test will skip"
    fi
fi
if command -v npm >/dev/null 2>&1 && [ ! -f .tools/node_modules/allure-commandline/package.json ]; then
    echo "[setup] installing allure-commandline@$ALLURE_VERSION into .tools/ (npm)"
    npm install --prefix .tools --no-save --no-package-lock --no-audit --no-fund "allure-commandline@$ALLURE_VERSION" >/tmp/stage1_5_npm.log 2>&1 \
        || echo "[setup] npm install allure-commandline failed (see /tmp/stage1_5_npm.log)"
fi
exit 0
